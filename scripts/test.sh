#!/usr/bin/env bash
# The README's test command: set everything up (idempotent), then run the whole suite and the linter.
# Extra arguments go to pytest (e.g. `scripts/test.sh -k scan`). AP_BUILD_TEST_WORKERS sets the
# number of pytest-xdist workers (default 3 on this 2-core machine: the end-to-end tests mostly wait on the
# engine). The 25 slowest tests are listed at the end, to keep CI's whole run under 15 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test-deps
source scripts/env.sh
rc=0
python -m pytest -n "${AP_BUILD_TEST_WORKERS:-3}" --dist loadgroup --durations=25 "$@" || rc=$?
echo "== ruff"
ruff check ap_build tests bench images/tests || rc=$((rc ? rc : 1))
exit $rc
