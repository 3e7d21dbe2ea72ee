"""The gate and the structure test over a user image built FROM the REAL Python runtime base
(the lead's `python_base_ref` fixture: built by `ap-build image build`, pushed to the loopback registry).
"""

from __future__ import annotations

import json

import pytest
from support.images import build_cached
from support.trivydb import Advisory, write_trivy_db

from ap_build.platform import BASE_TRIVYIGNORE_LABEL, CONTAINER_UID
from ap_build.resources import base_trivyignore
from ap_build.scan.gate import BASE_IGNORES_SOURCE
from ap_build.scan.structure import run_structure_test

# end-to-end: its lane (tests/conftest.py ENGINE_LANES) runs on one xdist worker at a time
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine")]


@pytest.fixture(scope="session")
def real_user_image(engine, python_base_ref) -> str:
    """What a runtime-template repository builds: FROM the base, a Python package, back to user 1000."""
    dockerfile = (
        f"FROM {python_base_ref}\n"
        "USER root\n"
        "COPY requests-2.0.0.dist-info /opt/analyticalplatform/lib/requests-2.0.0.dist-info\n"
        f"USER {CONTAINER_UID}\n"
    )
    meta = "Metadata-Version: 2.1\nName: requests\nVersion: 2.0.0\n"
    return build_cached(engine, "scan-real-user", dockerfile, {"requests-2.0.0.dist-info/METADATA": meta})


def test_user_image_on_real_base_gate_inherits_base_list_and_meets_contract(
    cli, engine, real_user_image, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    db = write_trivy_db(
        tmp_path / "db", [Advisory("GHSA-2099-real-0001", "requests", "HIGH", fixed_version="2.31.0", ecosystem="pip")]
    )
    res = cli("scan", real_user_image, "--cache-dir", str(db), "--vuln-type", "library", "--json")
    assert res.exit_code == 1, res.stderr
    doc = json.loads(res.stdout)
    assert [f["id"] for f in doc["findings"] if f["verdict"] == "blocking"] == ["GHSA-2099-real-0001"]
    # the base image built by `ap-build image build` carries this repository's .trivyignore, inherited by FROM
    assert engine.inspect(real_user_image)["Config"]["Labels"][BASE_TRIVYIGNORE_LABEL] == base_trivyignore().read_text()
    assert BASE_IGNORES_SOURCE in doc["artifact"]["ignore_sources"]
    (tmp_path / ".trivyignore").write_text("GHSA-2099-real-0001 exp:2099-01-01  # test: accepted\n")
    assert cli("scan", real_user_image, "--cache-dir", str(db), "--vuln-type", "library").exit_code == 0
    result = run_structure_test(real_user_image, engine=engine)
    assert result.passed, result.failures
