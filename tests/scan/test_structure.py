"""container-structure-test runner, end to end against real images in the engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.images import build_cached, user_image_dockerfile

from ap_build.errors import EngineError, UsageError
from ap_build.scan.structure import parse_result, run_structure_test

e2e = pytest.mark.e2e
pytestmark = pytest.mark.xdist_group("engine")  # its lane runs on one xdist worker (tests/conftest.py)


@pytest.fixture(scope="session")
def contract_image(engine, debian_base) -> str:
    """A stand-in user image that meets the contract (swap for the lead's python_base_ref when it exists)."""
    return build_cached(engine, "contract-ok", user_image_dockerfile(debian_base))


@e2e
def test_contract_image_passes_default_contract(engine, contract_image):
    res = run_structure_test(contract_image, engine=engine)
    assert res.passed, res.failures
    assert res.total == 1
    assert res.failures == []
    assert res.raw["Pass"] == 1


@e2e
def test_root_image_fails_contract_with_readable_lines(engine, debian_base):
    res = run_structure_test(debian_base, engine=engine)
    assert not res.passed
    assert any("user" in f and "1000" in f for f in res.failures), res.failures
    assert any("workdir" in f and "/opt/analyticalplatform" in f for f in res.failures), res.failures


@e2e
def test_custom_config_runs_commands(engine, contract_image, tmp_path: Path):
    cfg = tmp_path / "cst.yaml"
    cfg.write_text(
        'schemaVersion: "2.0.0"\n'
        "commandTests:\n"
        "  - name: whoami\n    command: id\n    args: ['-u']\n    expectedOutput: ['^1000']\n"
        "  - name: wrong\n    command: id\n    args: ['-u']\n    expectedOutput: ['^0']\n"
    )
    res = run_structure_test(contract_image, cfg, engine=engine)
    assert res.total == 2
    assert not res.passed
    assert len(res.failures) == 1 and res.failures[0].startswith("Command Test: wrong:")


@e2e
def test_bad_config_and_missing_image_are_errors(engine, contract_image, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text('schemaVersion: "2.0.0"\nbogus: [\n')
    with pytest.raises(UsageError, match=r"bad\.yaml:\d+"):
        run_structure_test(contract_image, bad, engine=engine)
    with pytest.raises(UsageError, match="not found"):
        run_structure_test(contract_image, tmp_path / "missing.yaml", engine=engine)
    with pytest.raises(EngineError, match="not found"):
        run_structure_test("localhost/ap-build-test/does-not-exist:1", engine=engine)


@e2e
def test_cli_test_command_exit_codes_and_json(cli, contract_image, debian_base, tmp_path: Path):
    ok = cli("test", contract_image, "--json")
    assert ok.exit_code == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["passed"] is True and data["total"] == 1 and data["failures"] == []
    bad = cli("test", debian_base, "--json")
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["passed"] is False
    missing = cli("test", contract_image, "--config", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2
    assert "nope.yaml" in missing.stderr and "Traceback" not in missing.stderr


def test_parse_result_counts_failures():
    passed, total, failures = parse_result(
        {
            "Total": 2,
            "Fail": 1,
            "Results": [{"Name": "a", "Pass": True}, {"Name": "b", "Pass": False, "Errors": ["x"]}],
        }
    )
    assert (passed, total, failures) == (False, 2, ["b: x"])
