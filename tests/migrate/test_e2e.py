"""End to end: migrated legacy repositories build FROM the real runtime bases built in this session, pass
`ap-build test` with the user-image contract (as the added test-container workflow runs it), and run their
program as user 1000 in /opt/analyticalplatform.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from ap_build.engine import Engine
from ap_build.images.sources import host_environ
from ap_build.images.spec import load_sources

# end-to-end: its lane (tests/conftest.py ENGINE_LANES) runs on one xdist worker at a time
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine")]

CASES = {
    # fixture -> (runtime, what the program prints)
    "python_basic": ("python", "my_etl_job running as uid 1000 in /opt/analyticalplatform"),
    # a release workflow under another name, WORKDIR /pq_flattener, `pip install --upgrade pip`, and pins older
    # than the distribution's own urllib3/requests (airflow-pq-flattener, airflow-matrix-scraper)
    # the first template: deploy.json, WORKDIR /home/app, COPY . /home/app, an `app` user (airflow-platform-user-data)
    "python_first_template": ("python", "platform_user_data running as uid 1000 in /opt/analyticalplatform; "
                                        "run.py here: True"),
    "python_renamed_workflow": ("python", "pq_flattener running as uid 1000 in /opt/analyticalplatform; 3 tables; "
                                          "requests 2.20.0, urllib3 1.24.3"),
    "r_plain": ("r", "r_plain running as uid 1000 in /opt/analyticalplatform"),
}


def with_pypi_access(repo: Path) -> str:
    """A copy of the migrated Dockerfile that reaches PyPI the way `--sources auto` does (this machine's pip
    index and CA, right after the final FROM); the migrated Dockerfile itself is built unchanged on the
    platform, where pypi.org answers. Returns the copy's name."""
    src = load_sources("debian", environ=host_environ())
    access = f"ENV PIP_INDEX_URL={src.pypi_index}\n"
    if src.ca_bundle:
        (repo / "build-ca.crt").write_bytes(Path(src.ca_bundle).read_bytes())
        access = "COPY build-ca.crt /usr/local/share/ca-certificates/build-ca.crt\n" + access + \
            "ENV PIP_CERT=/usr/local/share/ca-certificates/build-ca.crt\n"
    lines = (repo / "Dockerfile").read_text().splitlines(keepends=True)
    final = max(n for n, line in enumerate(lines) if line.upper().startswith("FROM "))
    (repo / "Dockerfile.e2e").write_text("".join(lines[: final + 1]) + access + "".join(lines[final + 1:]))
    return "Dockerfile.e2e"


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
    md = (repo / "MIGRATION.md").read_text()
    if runtime == "python":  # the base was asked for its Python, and the pins checked against it before the build
        assert "-> Python 3.13 (the new base `ap-build/python-base:" in md and "inspected: python3 3.13" in md
        assert "Pins: " in md and "cannot install" not in md
    else:  # the R base was asked for its R (its R_VERSION)
        assert "R 4.1.2 (the legacy `FROM r-airflow:4.1.2-2`) -> R 4." in md and "inspected (its R_VERSION)" in md

    image = f"localhost/ap-build-test/migrate-{name.replace('_', '-')}:{uuid.uuid4().hex[:8]}"
    dockerfile = with_pypi_access(repo) if runtime == "python" else "Dockerfile"
    engine.tag(engine.build(repo, dockerfile=dockerfile, buildargs={"MOJAP_IMAGE_VERSION": "2.0.0"}), image)
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
        if runtime == "python":  # what the user installed left the OS's tools alone
            rc, output = engine.run(image, ["--version"], entrypoint=["aws"])
            assert rc == 0 and output.startswith("aws-cli/"), output
    finally:
        engine.remove_image(image, force=True)
