"""The fixture DB writer (tests/support/trivydb.py) produces a DB the real Trivy reads offline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from support.trivydb import Advisory, write_trivy_db

TRIVY = str(Path(sys.executable).parent / "trivy")


def _rootfs_scan(rootfs: Path, cache: Path, *extra: str) -> dict:
    proc = subprocess.run(
        [
            TRIVY,
            "rootfs",
            str(rootfs),
            "--cache-dir",
            str(cache),
            "--skip-version-check",
            "--disable-telemetry",
            "--format",
            "json",
            "-q",
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=rootfs,
        timeout=300,
        check=True,
    )
    return json.loads(proc.stdout)


def test_language_advisory_found_and_empty_db_is_clean(tmp_path: Path):
    rootfs = tmp_path / "rootfs"
    meta = rootfs / "usr/lib/python3/dist-packages/requests-2.0.0.dist-info/METADATA"
    meta.parent.mkdir(parents=True)
    meta.write_text("Metadata-Version: 2.1\nName: requests\nVersion: 2.0.0\n")
    cache = write_trivy_db(
        tmp_path / "c1",
        [
            Advisory("GHSA-aaaa-bbbb-cccc", "requests", "HIGH", fixed_version="2.31.0", ecosystem="pip"),
            Advisory("GHSA-dddd-eeee-ffff", "requests", "LOW", fixed_version="1.0.0", ecosystem="pip"),
        ],
    )
    report = _rootfs_scan(rootfs, cache)  # fresh metadata: no download attempted even without --skip-db-update
    vulns = [v for r in report["Results"] for v in r.get("Vulnerabilities") or []]
    assert [(v["VulnerabilityID"], v["FixedVersion"], v["Severity"]) for v in vulns] == [
        ("GHSA-aaaa-bbbb-cccc", "2.31.0", "HIGH")
    ]
    empty = write_trivy_db(tmp_path / "c2", [], fresh=False)
    assert json.loads((empty / "db/metadata.json").read_text()) == {"Version": 2}
    report = _rootfs_scan(rootfs, empty, "--skip-db-update")
    assert not [v for r in report.get("Results") or [] for v in r.get("Vulnerabilities") or []]
    assert shutil.which(TRIVY)
