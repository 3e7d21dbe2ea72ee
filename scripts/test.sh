#!/usr/bin/env bash
# The README's test command: set everything up (idempotent) and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
ruff check ap_build tests bench
exec python -m pytest -n 2 --dist loadgroup "$@"
