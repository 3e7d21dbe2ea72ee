"""The "Done when": a scaffolded repository builds FROM a runtime base pushed to the loopback registry,
passes `ap-build test` and `ap-build scan` run exactly as its CI workflows run them (the callers' inputs
through ap-build's reusable workflows and action), and its program runs and prints as user 1000.
"""

from __future__ import annotations

import json
import shlex
import uuid
from pathlib import Path

import pytest
import yaml
from action.ghrunner import Evaluator
from support.trivydb import write_trivy_db

from ap_build.engine import Engine

# end-to-end: its lane (tests/conftest.py ENGINE_LANES) runs on one xdist worker at a time
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine")]


ROOT = Path(__file__).resolve().parents[2]


def action_argv(repo: Path, workflow: str, step: str) -> list[str]:
    """The ap-build command line CI runs: the generated caller's inputs, through the step of ap-build's
    reusable workflow that runs the action (its `with:` evaluated as GitHub does), as the action builds it.
    The image stays `${IMAGE}`."""
    (job,) = yaml.safe_load((repo / ".github/workflows" / workflow).read_text())["jobs"].values()
    reusable = yaml.safe_load((ROOT / job["uses"].split("@", 1)[0].split("/", 2)[2]).read_text())
    declared = reusable[True]["workflow_call"]["inputs"]  # PyYAML reads the key `on` as True
    inputs = {name: spec.get("default", "") for name, spec in declared.items()} | job.get("with", {})
    (called,) = reusable["jobs"].values()
    (s,) = [s for s in called["steps"] if s.get("name") == step]
    assert s["uses"] == "./.ap-build-action"
    ev = Evaluator({"inputs": inputs, "env": {"IMAGE": "${IMAGE}"}, "runner": {"temp": "/tmp"}}, "success")
    given = {k: ev.interpolate(str(v)) for k, v in s["with"].items()}
    args = shlex.split(given.get("args", ""))
    if given["command"] == "test":
        return ["test", given["image"], "--config", given.get("config", "container-structure-test.yml"), *args]
    assert given["command"] == "scan"
    reports = ["--report", "sarif=ap-build-scan.sarif", "--report", "markdown=ap-build-scan.md"]
    return ["scan", given["image"], *args, *reports]


@pytest.fixture(scope="module")
def bases(request: pytest.FixtureRequest) -> dict[str, str]:
    """The real runtime bases, built and pushed to the loopback registry in this session (lead's fixtures)."""
    return {rt: request.getfixturevalue(f"{rt}_base_ref") for rt in ("python", "r")}


@pytest.mark.parametrize("runtime", ["python", "r"])
def test_scaffold_build_test_scan_run(
    runtime: str, bases: dict[str, str], engine: Engine, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = bases[runtime]
    assert "@sha256:" in base and base.startswith("127.0.0.1:5000/")
    repo = tmp_path / f"my_{runtime}_repo"
    r = cli("scaffold", runtime, str(repo), "--base-image", base, "--org", "moj-analytical-services")
    assert r.exit_code == 0, r.stderr
    assert (repo / "Dockerfile").read_text().splitlines()[0] == f"FROM {base}"

    image_id = engine.build(repo, buildargs={"MOJAP_IMAGE_VERSION": "1.2.3"})
    image = f"localhost/ap-build-test/scaffold-{runtime}:e2e-{uuid.uuid4().hex[:8]}"
    engine.tag(image_id, image)
    try:
        monkeypatch.chdir(repo)  # the workflows run at the repository root
        monkeypatch.setenv("IMAGE", image)

        test_args = [image if a == "${IMAGE}" else a for a in action_argv(repo, "test-container.yml", "Test")]
        # Absolute config path: ap_build/scan/structure.py runs the tool in a temporary cwd without resolving
        # a relative --config (reported; see test_relative_config_path below).
        test_args = [str(repo / a) if a == "container-structure-test.yml" else a for a in test_args]
        r = cli(*test_args, "--json")
        assert r.exit_code == 0, r.stdout + r.stderr
        result = yaml.safe_load(r.stdout)
        assert result["passed"] and result["total"] >= 3

        scan_args = [image if a == "${IMAGE}" else a for a in action_argv(repo, "scan-container.yml", "Scan")]
        assert scan_args[2:4] == ["--vuln-type", "library"]
        assert ("--skip-dir" in scan_args) == (runtime == "r")
        cache = write_trivy_db(tmp_path / "trivy-cache", [])
        r = cli(*scan_args, "--cache-dir", str(cache), "--skip-db-update")
        assert r.exit_code == 0, r.stdout + r.stderr
        assert "scan passed" in r.stdout + r.stderr
        sarif = json.loads((repo / "ap-build-scan.sarif").read_text())
        assert sarif["version"] == "2.1.0" and sarif["runs"]
        assert (repo / "ap-build-scan.md").read_text().strip()

        rc, output = engine.run(image, [])
        assert rc == 0, output
        assert f"Hello from my_{runtime}_repo 1.2.3" in output
        assert "uid 1000, in /opt/analyticalplatform" in output
        assert engine.inspect(image)["Config"]["User"] == "1000"
    finally:
        engine.remove_image(image, force=True)


def test_contract_test_fails_an_image_that_breaks_the_contract(
    bases: dict[str, str], engine: Engine, cli, tmp_path: Path
) -> None:
    """The generated structure test is not vacuous: an edit that leaves the image as root fails it."""
    repo = tmp_path / "rooted"
    assert cli("scaffold", "python", str(repo), "--base-image", bases["python"]).exit_code == 0
    df = repo / "Dockerfile"
    df.write_text(df.read_text().replace("USER ${CONTAINER_UID}\n", ""))
    image = f"localhost/ap-build-test/scaffold-rooted:e2e-{uuid.uuid4().hex[:8]}"
    engine.tag(engine.build(repo), image)
    try:
        r = cli("test", image, "--config", str(repo / "container-structure-test.yml"))
        assert r.exit_code == 1
        assert "FAIL" in r.stdout
    finally:
        engine.remove_image(image, force=True)


def test_tag_only_base_image_is_resolved_through_the_registry(
    bases: dict[str, str], engine: Engine, registry: str, cli, tmp_path: Path
) -> None:
    # A tag of our own (other sessions may move the shared fixture tags while this runs).
    tag_only = f"{registry}/ap-build-test/scaffold-resolve:{uuid.uuid4().hex[:12]}"
    engine.tag(engine.inspect(bases["python"])["Id"], tag_only)
    try:
        digest = engine.push(tag_only)
    finally:
        engine.remove_image(tag_only)
    r = cli("scaffold", "python", str(tmp_path / "x"), "--base-image", tag_only)
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "x/Dockerfile").read_text().splitlines()[0] == f"FROM {tag_only}@{digest}"


def test_unresolvable_tag_exits_2(cli, tmp_path: Path, registry: str) -> None:
    r = cli("scaffold", "python", str(tmp_path / "x"), "--base-image", f"{registry}/ap-build/nope:0.0.1")
    assert r.exit_code == 2
    assert "cannot resolve --base-image" in r.stderr
    assert not (tmp_path / "x").exists()


def test_relative_config_path_as_the_workflow_passes_it(
    bases: dict[str, str], engine: Engine, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "rel"
    assert cli("scaffold", "python", str(repo), "--base-image", bases["python"]).exit_code == 0
    image = f"localhost/ap-build-test/scaffold-rel:e2e-{uuid.uuid4().hex[:8]}"
    engine.tag(engine.build(repo), image)
    try:
        monkeypatch.chdir(repo)
        r = cli("test", image, "--config", "container-structure-test.yml")
        assert r.exit_code == 0, r.stderr
    finally:
        engine.remove_image(image, force=True)
