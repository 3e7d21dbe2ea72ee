#!/usr/bin/env bash
# The README's main command: set everything up, then build, test and scan the Python runtime image
# with this machine's defaults. Usage: scripts/quickstart.sh [RUNTIME] (python | r; default python)
set -euo pipefail
cd "$(dirname "$0")/.."
runtime=${1:-python}
version=${AP_BUILD_VERSION:-0.1.0}
tag="localhost/ap-build/${runtime}-base:${version}"
out=${AP_BUILD_OUT:-out}
mkdir -p "$out"

bash scripts/setup.sh
source scripts/env.sh
ap-build doctor

# Sources: `ap-build image build` chooses them itself (--sources auto): the upstream sources where they
# answer, else this machine's own pip and apt settings; it prints which and why. AP_BUILD_SOURCES overrides.
echo "== build ($runtime)"
ap-build image build "$runtime" --sources "${AP_BUILD_SOURCES:-auto}" --version "$version" --tag "$tag" \
  --report "$out/build-report.json"
echo "== contract test"
ap-build image test "$tag"
echo "== scan (base image: OS and language packages)"
set +e
ap-build scan "$tag" --vuln-type all --format table --output "$out/scan.txt"
rc=$?
if [ $rc -eq 2 ] && [ -z "${AP_BUILD_NO_OFFLINE_DB:-}" ]; then
  # No vulnerability DB and no network to download one (as on this project's CI machines):
  # scan against an EMPTY local DB so the rest of the gate (secrets, ignores, reports) still runs.
  echo "!! no Trivy DB could be downloaded: scanning against an EMPTY offline DB (no advisories)." >&2
  echo "!! Online, ap-build downloads the real DB (or use --db-repository for a mirror)." >&2
  cache="$(realpath "$out")/trivy-offline-cache"
  rm -rf "$cache"
  if ! python -c "import boltdb" 2>/dev/null; then  # the fixture-DB writer's one dependency, by hash from the test lock
    awk '/^boltdb==/{p=1; print; next} p && /^ /{print; next} {p=0}' locks/test.txt > "$out/boltdb.lock"
    VIRTUAL_ENV=$PWD/.venv .venv/bin/uv pip install -q --require-hashes -r "$out/boltdb.lock"
  fi
  PYTHONPATH=tests python -c "import sys; from support.trivydb import write_trivy_db; write_trivy_db(sys.argv[1], [])" "$cache"
  ap-build scan "$tag" --vuln-type all --cache-dir "$cache" --skip-db-update --format table --output "$out/scan.txt"
  rc=$?
fi
set -e
cat "$out/scan.txt" 2>/dev/null || true
echo "== reports in $out/: build-report.json, scan.txt"
exit $rc
