#!/usr/bin/env bash
# A second Podman API service on a storage root of its own, for checking that builds do not depend on the engine's
# storage (issue 22: the same inputs give the same image ID across two storage roots).
#
#   bash scripts/engine-root2.sh start [DIR]   # prints the DOCKER_HOST of the new service (unix://DIR/run/podman.sock)
#   bash scripts/engine-root2.sh stop  [DIR]   # stops the service this script started (by its PID), removes DIR
#
# DIR defaults to /var/tmp/ap-build-root2. The service has its own --root, --runroot and tmp dir, and file locks in
# that tmp dir (CONTAINERS_CONF below): the shared service's shared-memory locks are never touched, so its
# containers are not disturbed. It reads the system's registries.conf (the loopback registry) and uses the same
# runtime (runc) and ulimits as /etc/containers/containers.conf. Rootful only (as scripts/setup.sh).
set -euo pipefail

cmd="${1:-}"
dir="${2:-/var/tmp/ap-build-root2}"
case "$dir" in /*ap-build*) ;; *) echo "error: DIR must be an absolute path naming ap-build (it is removed on stop), got $dir" >&2; exit 2 ;; esac
sock="$dir/run/podman.sock"
pidfile="$dir/podman.pid"

answers() { curl -fsS --max-time 2 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; }

start() {
  command -v podman >/dev/null || { echo "error: podman is not installed" >&2; echo "hint: bash scripts/setup.sh" >&2; exit 2; }
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && answers; then
    echo "unix://$sock"; return 0
  fi
  mkdir -p "$dir/storage" "$dir/run" "$dir/tmp"
  {
    # the system's settings, then this service's own lock type and tmp dir
    sed -n '/^\[containers\]/,/^\[/p' /etc/containers/containers.conf 2>/dev/null | grep -v '^\[engine\]' || true
    printf '[engine]\nruntime = "runc"\nlock_type = "file"\ntmp_dir = "%s"\n' "$dir/tmp"
  } >"$dir/containers.conf"
  grep -q '^\[containers\]' "$dir/containers.conf" || sed -i '1i [containers]' "$dir/containers.conf"
  CONTAINERS_CONF="$dir/containers.conf" nohup podman --root "$dir/storage" --runroot "$dir/run" \
    system service --time=0 "unix://$sock" >"$dir/podman.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do answers && { echo "unix://$sock"; return 0; }; sleep 0.1; done
  echo "error: the second Podman service did not answer on $sock; see $dir/podman.log" >&2
  exit 2
}

stop() {
  if [ -f "$pidfile" ]; then
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  # overlay mounts a stopped build may have left under this root (never anything outside it)
  grep -o " $dir/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
  [ -d "$dir" ] || return 0
  # the storage (GBs of layers) is removed in the background: on a busy disk that takes minutes, and nothing
  # waits for it (the next start uses a folder of its own or finds this one gone)
  gone="$dir.removing-$$"
  mv "$dir" "$gone"
  setsid nohup rm -rf "$gone" >/dev/null 2>&1 &
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop [DIR]" >&2; exit 2 ;;
esac
