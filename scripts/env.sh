# Source me after scripts/setup.sh: points the Docker SDK/CLI at the engine and puts .venv on PATH.
_ap_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DOCKER_HOST="${DOCKER_HOST:-unix:///run/podman/podman.sock}"
export PATH="$_ap_root/.venv/bin:$PATH"
unset _ap_root
