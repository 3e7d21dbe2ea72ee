"""ap-build's composite action (action.yml), run step by step as GitHub's runner runs it (ghrunner.py):
installed from its own checkout with the hash-pinned locks, then `exceptions check`, `test` and `scan`
against a real scaffolded image on the real engine, with a fixture Trivy DB (no network for the real one).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from support.images import source_versions
from support.trivydb import Advisory, write_trivy_db

from action.ghrunner import ActionRun, parse_commands_file, run_action
from ap_build.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
FIXABLE_HIGH = "CVE-2099-0101"


def runner_env() -> dict[str, str]:
    """The environment of a runner's job: this test session's virtualenv is not on PATH."""
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "TRIVY_CACHE_DIR")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    return env


def run(action_dir: Path, runner_temp: Path, workspace: Path, job_env: dict[str, str] | None = None,
        **inputs: str) -> ActionRun:
    return run_action(action_dir, inputs, workspace=workspace, temp=runner_temp, env=runner_env() | (job_env or {}))


@pytest.fixture(scope="module")
def first_runs(action_dir, tmp_path_factory) -> list[ActionRun]:
    """A fresh job's first two uses of the action, at the same time: one installs, the other waits for it.
    (Its own RUNNER_TEMP: other tests on this xdist worker may have installed into the session's already.)"""
    from concurrent.futures import ThreadPoolExecutor

    runner_temp = tmp_path_factory.mktemp("runner-temp-fresh")
    spaces = [tmp_path_factory.mktemp("first") for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda ws: run(action_dir, runner_temp, ws, command="exceptions check"), spaces))


def test_concurrent_first_uses_install_once(first_runs: list[ActionRun]) -> None:
    assert [r.outcome for r in first_runs] == ["success", "success"], first_runs[0].log + first_runs[1].log
    installs = [r for r in first_runs if "installing ap-build" in r.steps[0].log]
    assert len(installs) == 1, [r.steps[0].log for r in first_runs]
    assert all(r.outputs["verdict"] == "passed" for r in first_runs)


def test_the_action_is_shell_steps_with_inputs_only_through_env() -> None:
    spec = yaml.safe_load((ROOT / "action.yml").read_text())
    assert spec["runs"]["using"] == "composite"
    for step in spec["runs"]["steps"]:
        assert "uses" not in step or step["uses"].startswith("actions/setup-python@"), step
        assert "${{" not in step.get("run", ""), step["name"]
        assert "INPUT_" not in step.get("run", ""), step["name"]
    text = (ROOT / "action.yml").read_text()
    assert "pip install ap-build" not in text and "--require-hashes" in text


def test_commands_file_syntax() -> None:
    assert parse_commands_file("a=1\nb<<EOF\nx\ny=z\nEOF\nc=\n") == {"a": "1", "b": "x\ny=z", "c": ""}


def test_exceptions_check_passes_then_fails_with_summary_and_outputs(action_dir, runner_temp, tmp_path,
                                                                     first_runs) -> None:
    ws = tmp_path / "repo"
    ws.mkdir()
    (ws / ".trivyignore").write_text("CVE-2099-0001 exp:2099-01-01  # not reachable: we never parse XML\n")
    res = run(action_dir, runner_temp, ws, command="exceptions check")
    assert res.outcome == "success", res.log
    assert [s.outcome for s in res.steps] == ["success", "skipped", "success"]  # no DB step without a scan
    assert res.outputs["verdict"] == "passed" and res.outputs["exit-code"] == "0"
    assert "### ap-build exceptions check ✅ passed" in res.summary
    assert json.loads(Path(res.outputs["json"]).read_text())["entries"] == 1

    (ws / ".grype.yaml").write_text("ignore:\n  - vulnerability: CVE-2099-0002\n")
    res = run(action_dir, runner_temp, ws, command="exceptions check",
              args="--require-reason\n--max-expiry-days 90")
    assert res.outcome == "failure" and res.exit_code == 1, res.log
    # the job's virtualenv is reused (the first run above installed it, unless a test before it on this worker did)
    assert "installing ap-build" not in res.steps[0].log
    assert res.outputs["verdict"] == "failed" and res.outputs["exit-code"] == "1"
    assert "### ap-build exceptions check ❌ failed" in res.summary
    assert "CVE-2099-0002" in res.summary and ".grype.yaml:2" in res.summary
    assert Path(res.outputs["markdown"]).read_text() in res.summary

    # the other spellings of the command; an ID that is HTML and markdown stays text in the summary
    (ws / ".grype.yaml").write_text('ignore:\n  - vulnerability: "<img src=x>[a](http://b)"\n')
    for command, args in (("exceptions-check", "--require-reason"), ("exceptions", "check --require-reason")):
        res = run(action_dir, runner_temp, ws, command=command, args=args)
        assert res.outputs["verdict"] == "failed", res.log
    assert "&lt;img src=x&gt;" in res.summary and "<img" not in res.summary and "](http" not in res.summary


def test_inputs_are_data_never_code(action_dir, runner_temp, tmp_path, first_runs) -> None:
    ws = tmp_path / "repo"
    ws.mkdir()
    res = run(action_dir, runner_temp, ws, command="exceptions check",
              args="--ignore-file '$(touch pwned)' --ignore-file \"`touch pwned2`\"")
    assert res.exit_code == 2 and res.outputs["verdict"] == "error", res.log
    assert "$(touch pwned)" in res.log and not (ws / "pwned").exists() and not (ws / "pwned2").exists()
    res = run(action_dir, runner_temp, ws, command="deploy; touch pwned3")
    assert res.exit_code == 2 and "the command input must be one of" in res.log
    assert not (ws / "pwned3").exists()
    res = run(action_dir, runner_temp, ws, command="scan")
    assert res.exit_code == 2 and "the image input is required for scan" in res.log
    res = run(action_dir, runner_temp, ws, command="exceptions check", args="--ignore-file 'unclosed")
    assert res.exit_code == 2 and "not valid shell words" in res.log


@pytest.fixture(scope="module")
def scaffolded_image(request: pytest.FixtureRequest, cli, tmp_path_factory) -> tuple[Path, str]:
    """A repository made by `ap-build scaffold python` FROM the real Python runtime base, built."""
    engine: Engine = request.getfixturevalue("engine")
    base = request.getfixturevalue("python_base_ref")
    repo = tmp_path_factory.mktemp("action-repo") / "my_pipeline"
    r = cli("scaffold", "python", str(repo), "--base-image", base, "--org", "moj-analytical-services")
    assert r.exit_code == 0, r.stderr
    image = f"localhost/ap-build-test/action-scaffold:{uuid.uuid4().hex[:8]}"
    engine.tag(engine.build(repo, buildargs={"MOJAP_IMAGE_VERSION": "1.0.0"}), image)
    yield repo, image
    engine.remove_image(image, force=True)


@pytest.fixture(scope="module")
def cli(request: pytest.FixtureRequest):
    """The in-process CLI for module-scoped fixtures (tests/conftest.py's `cli` is function-scoped)."""
    from ap_build.cli import main

    class Result:
        def __init__(self, code: int, stderr: str) -> None:
            self.exit_code, self.stderr = code, stderr

    def call(*args: str) -> Result:
        try:
            main(list(args))
        except SystemExit as exc:
            return Result(exc.code if isinstance(exc.code, int) else 0, "")
        return Result(0, "")

    return call


@pytest.mark.e2e
@pytest.mark.xdist_group("engine")
def test_structure_test_of_a_scaffolded_image_passes(action_dir, runner_temp, scaffolded_image, tmp_path,
                                                     first_runs) -> None:
    repo, image = scaffolded_image
    res = run(action_dir, runner_temp, repo, command="test", image=image)
    assert res.outcome == "success" and res.exit_code == 0, res.log
    assert res.outputs["verdict"] == "passed" and res.outputs["exit-code"] == "0"
    result = json.loads(Path(res.outputs["json"]).read_text())
    assert result["passed"] and result["total"] >= 3 and result["config"].endswith("container-structure-test.yml")
    assert "### ap-build test ✅ passed" in res.summary and f"{result['total']} of {result['total']}" in res.summary
    assert res.outputs["sarif"] == "" and res.outputs["trivy-cache-dir"] == ""
    assert "::stop-commands::" in res.steps[-1].log  # the tool's output is never read as workflow commands

    # A workspace without container-structure-test.yml: the platform's user-image contract alone.
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run(action_dir, runner_temp, empty, command="test", image=image)
    assert res.outcome == "success", res.log
    result = json.loads(Path(res.outputs["json"]).read_text())
    assert result["passed"] and not str(result["config"]).endswith(".yml")


@pytest.mark.e2e
@pytest.mark.xdist_group("engine")
def test_scan_with_a_blocking_finding_fails_with_the_verdict_in_summary_and_outputs(
    action_dir, runner_temp, scaffolded_image, tmp_path, request, first_runs
) -> None:
    repo, image = scaffolded_image
    # the user image runs its program (ENTRYPOINT): read the packages in its base, which it has unchanged
    zlib = source_versions(request.getfixturevalue("engine"), request.getfixturevalue("python_base_ref"))["zlib"]
    advisory = Advisory(FIXABLE_HIGH, "zlib", "HIGH", fixed_version=zlib + "+fix1")
    db = write_trivy_db(tmp_path / "trivy-cache", [advisory])
    res = run(action_dir, runner_temp, repo, command="scan", image=image, **{"cache-dir": str(db),
              "skip-db-update": "true", "report-dir": "reports"})
    assert res.outcome == "failure" and res.exit_code == 1, res.log
    assert [s.outcome for s in res.steps] == ["success", "success", "failure"]
    assert res.outputs["verdict"] == "failed" and res.outputs["exit-code"] == "1"
    assert res.outputs["trivy-cache-dir"] == str(db.resolve())
    assert res.summary.startswith("### ap-build scan ❌ failed") and FIXABLE_HIGH in res.summary
    sarif = json.loads(Path(res.outputs["sarif"]).read_text())
    assert {r["ruleId"] for r in sarif["runs"][0]["results"] if r["level"] == "error"} == {FIXABLE_HIGH}
    assert Path(res.outputs["sarif"]).parent == repo / "reports"
    assert json.loads(Path(res.outputs["json"]).read_text())["verdict"] == "failed"

    # The same finding accepted in the repository's .trivyignore (with a reason): the gate passes.
    ignore = repo / ".trivyignore"
    kept = ignore.read_text()
    ignore.write_text(f"{FIXABLE_HIGH} exp:2099-01-01  # test: accepted\n")
    try:
        # the DB named by the job's TRIVY_CACHE_DIR instead of the input
        res = run(action_dir, runner_temp, repo, {"TRIVY_CACHE_DIR": str(db)}, command="scan", image=image,
                  args="--vuln-type os", **{"skip-db-update": "true"})
    finally:
        ignore.write_text(kept)
    assert res.outcome == "success" and res.outputs["verdict"] == "passed", res.log
    assert res.summary.startswith("### ap-build scan ✅ passed") and res.outputs["trivy-cache-dir"] == str(db.resolve())
