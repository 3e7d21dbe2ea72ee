"""End to end: migrated legacy repositories build FROM the real runtime bases built in this session, pass
`ap-build test` with the user-image contract (as the added test-container workflow runs it), and run their
program as user 1000 in /opt/analyticalplatform.
"""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from ap_build.engine import Engine

# every engine test runs on one xdist worker: concurrent Podman builds that remove images collide
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine")]

CASES = {
    # fixture -> (runtime, what the program prints)
    "python_basic": ("python", "my_etl_job running as uid 1000 in /opt/analyticalplatform"),
    "r_plain": ("r", "r_plain running as uid 1000 in /opt/analyticalplatform"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_migrated_repository_builds_passes_the_contract_and_runs_as_1000(
    name: str, request: pytest.FixtureRequest, engine: Engine, make_repo, cli
) -> None:
    runtime, expected = CASES[name]
    base = request.getfixturevalue(f"{runtime}_base_ref")  # the lead's session fixtures (pushed, pinned)
    repo = make_repo(name)
    r = cli("migrate", str(repo), "--yes", "--base-image", base)
    assert r.exit_code == 0, r.stderr
    assert (repo / "Dockerfile").read_text().splitlines()[0] == f"FROM {base}"

    image = f"localhost/ap-build-test/migrate-{name.replace('_', '-')}:{uuid.uuid4().hex[:8]}"
    engine.tag(engine.build(repo, buildargs={"MOJAP_IMAGE_VERSION": "2.0.0"}), image)
    try:
        # the added test-container workflow calls ap-build's reusable one, whose action runs
        # `ap-build test IMAGE --config container-structure-test.yml` (its default config)
        workflow = yaml.safe_load((repo / ".github/workflows/test-container.yml").read_text())
        (job,) = workflow["jobs"].values()
        assert "/.github/workflows/reusable-container-test.yml@" in job["uses"] and "config" not in job["with"]
        r = cli("test", image, "--config", str(repo / "container-structure-test.yml"), "--json")
        assert r.exit_code == 0, r.stdout + r.stderr
        result = json.loads(r.stdout)
        assert result["passed"] and result["total"] >= 3  # metadata (user, workdir, env), program file, id -u

        config = engine.inspect(image)["Config"]
        assert config["User"] == "1000" and config["WorkingDir"] == "/opt/analyticalplatform"
        assert "MOJAP_IMAGE_VERSION=2.0.0" in config["Env"]
        rc, output = engine.run(image, [])
        assert rc == 0, output
        assert expected in output
    finally:
        engine.remove_image(image, force=True)
