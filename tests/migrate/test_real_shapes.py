"""Migrate on repositories shaped like real legacy ones: release workflows under other names, a WORKDIR that
is not /etl, versions as the FROM lines state them, S3 paths built by code, renv as the runtime user, comments
that go with their lines. The fixtures' READMEs name the public repositories they are shaped after."""

from __future__ import annotations

import json

import pytest
import yaml

from ap_build.migrate.dockerfile import parse
from ap_build.migrate.pins import COMPILER_NOTE, Pin, PinProblem, PinReport, with_compiler
from ap_build.migrate.rewrite import path_pattern, rewrite
from ap_build.migrate.versions import platform_tag, source_version
from ap_build.migrate.workflows import evidence, legacy_release_workflows
from ap_build.scaffold.render import Answers, render_files

from .conftest import FIXTURES

BASE = "127.0.0.1:5000/ap-build/python-base:1.0.0@sha256:" + "b" * 64


def test_release_workflows_are_recognised_by_what_they_do() -> None:
    listing = {".github/workflows/ecr-build-and-push.yml", ".github/workflows/lint.yml"}
    files = {p: (FIXTURES / "python_renamed_workflow" / p).read_bytes() for p in listing}
    assert legacy_release_workflows(files, listing) == {".github/workflows/ecr-build-and-push.yml": [
        "pushes with moj-analytical-services/actions-build-and-push-to-ecr (the legacy ECR)",
        "assumes the legacy release role (secrets.AWS_ECR_PUSH_ROLE)",
        "shares the image with moj-analytical-services/actions-cross-account-ecr (the legacy ECR)"]}
    built = (FIXTURES / "python_old_pins/.github/workflows/build.yml").read_text()
    assert evidence(built) == ["uses DE_ECR (the legacy ECR registry)", "pushes to an ECR registry in eu-west-1"]
    assert evidence("# uses: moj-analytical-services/actions-build-and-push-to-ecr@v1\n") == []  # a comment
    # the workflows migrate adds are never taken for legacy ones
    for runtime in ("python", "r"):
        rendered = render_files(runtime, Answers(name="job", org="org").resolved(runtime), include_examples=False)
        assert not [p for p, text in rendered.items() if p.startswith(".github/") and evidence(text)]


@pytest.mark.parametrize(("from_value", "version"), [
    ("${DE_ECR}/python:3.7", "3.7"), ("${DE_ECR}/python:3.7-alpine", "3.7"), ("python:3.6", "3.6"),
    ("${DE_ECR}/python:3.9-slim-bullseye AS build", "3.9"), ("${DE_ECR}/python3.7-slim", "3.7"),
    ("${DE_ECR}/r-airflow:4.1.2-2", "4.1.2"), ("rocker/r-ver:4.0.3", "4.0.3"), ("rocker/tidyverse:4.2", "4.2"),
    ("${DE_ECR}/python:latest", ""), ("${DE_ECR}/python", ""),
])
def test_source_version_is_what_the_legacy_from_states(from_value: str, version: str) -> None:
    assert source_version(from_value) == version


def test_platform_tag() -> None:
    assert platform_tag("x86_64", "2.41") == "x86_64-manylinux_2_40"  # uv's newest
    assert platform_tag("aarch64", "2.39") == "aarch64-manylinux_2_39"
    assert platform_tag("x86_64", "") == "linux"  # musl or unknown


def test_a_workdir_other_than_etl_moves_with_every_path_to_the_program() -> None:
    text = (FIXTURES / "python_renamed_workflow/Dockerfile").read_text()
    rw = rewrite(parse(text), BASE)
    assert rw.app_dir == "/pq_flattener" and not path_pattern({"/pq_flattener"}).search(rw.text)
    lines = rw.text.splitlines()
    assert "WORKDIR /opt/analyticalplatform" in lines
    assert "ENV CONFIG_PATH=/opt/analyticalplatform/v1/config.json" in lines
    assert lines[-1] == 'ENTRYPOINT ["python3", "/opt/analyticalplatform/pq_flattener.py"]'
    assert "RUN python3 -m pip install --upgrade pip" in lines
    assert "chmod" not in rw.text  # `RUN RUN chmod -R 777 .` (a real typo) went too
    assert "# Give everyone write access to the working directory" not in rw.text  # with its comment


def test_r_renv_steps_run_as_the_runtime_user_and_comments_go_with_their_lines() -> None:
    rw = rewrite(parse((FIXTURES / "r_renv/Dockerfile").read_text()), BASE)
    body = rw.text.split('ENV MOJAP_IMAGE_VERSION="${MOJAP_IMAGE_VERSION}"\n', 1)[1]
    assert body == (
        "\n# Create a working directory\nWORKDIR /opt/analyticalplatform\n\n"
        "USER root\n# Add R package requirements and scripts\nCOPY renv.lock renv.lock\nCOPY scripts/ scripts/\n\n"
        "# Use the latest repos for R\n"
        "RUN R -e \"options(repos = c(PPM = 'https://packagemanager.posit.co/cran/latest'))\"\n"
        "# Install renv globally\nRUN R -e \"install.packages('renv')\"\n\n"
        "USER ${CONTAINER_UID}\n# Initialise renv...\nRUN R -e \"renv::init(bare = TRUE)\"\n"
        "# ... and restore the R environment\nRUN R -e \"renv::restore()\"\n\n"
        "# Run the DAG task\nENTRYPOINT [\"Rscript\", \"scripts/run.R\"]\n"
    )
    gone = [d for d in rw.done if "dropped the comment" in d]
    assert gone == [
        "Dockerfile:11: dropped the comment of a removed line: # Give working directory permissions to everyone",
        "Dockerfile:19: dropped the comment of a removed line: "
        "# Create a user with a home directory, which is necessary for renv",
        "Dockerfile:20: dropped the comment of a removed line: # The user id must be the same as in the Airflow DAG",
    ]
    # a root step after the renv steps switches back to root, and the image still ends as the user
    again = rewrite(parse("FROM ${DE_ECR}/r-airflow:4.1.2\nRUN R -e 'renv::restore()'\nRUN apt-get update\n"
                          "CMD [\"R\"]\n"), BASE).text
    assert again.split("\n", 3)[3] == ("WORKDIR /opt/analyticalplatform\nRUN R -e 'renv::restore()'\nUSER root\n"
                                       "RUN apt-get update\nUSER ${CONTAINER_UID}\nCMD [\"R\"]\n")


def test_renamed_workflow_repository_migrates_whole(make_repo, cli) -> None:
    repo = make_repo("python_renamed_workflow")
    r = cli("migrate", "--offline", str(repo), "--yes", "--json", "--base-image", BASE)
    assert r.exit_code == 0, r.stderr
    ops = {o["path"]: o for o in json.loads(r.stdout)["operations"]}
    assert ops[".github/workflows/ecr-build-and-push.yml"]["action"] == "delete"
    assert ".github/workflows/lint.yml" not in ops and (repo / ".github/workflows/lint.yml").exists()
    workflows = sorted(p.name for p in (repo / ".github/workflows").iterdir())
    assert workflows == ["dependency-review.yml", "lint.yml", "release-container.yml", "scan-container.yml",
                         "test-container.yml"]  # one release workflow, the new one
    md = (repo / "MIGRATION.md").read_text()
    assert "- delete `.github/workflows/ecr-build-and-push.yml`: a legacy release workflow: pushes with " in md
    assert "AWS_ECR_PUSH_ROLE" not in md.replace("(secrets.AWS_ECR_PUSH_ROLE)", "")  # no secret to re-create
    assert "Python 3.7 (the legacy `FROM python:3.7`) -> Python (version not known)" in md
    cst = yaml.safe_load((repo / "container-structure-test.yml").read_text())
    assert cst["fileExistenceTests"][0]["path"] == "/opt/analyticalplatform/pq_flattener.py"
    # only literal S3 paths in the starter manifest; the f-string one is a note
    block = md.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block)["iam"]["s3_read_only"] == ["alpha-pq-flattener/nested"]
    assert "S3 paths built by code" in md and "`pq_flattener.py:9`: `s3://alpha-dag-matrix/db/{env}/flat`" in md


def test_starter_manifest_holds_only_literal_paths(make_repo, cli) -> None:
    repo = make_repo("python_old_pins")
    r = cli("migrate", "--offline", str(repo), "--yes", "--base-image", BASE)
    assert r.exit_code == 0, r.stderr
    md = (repo / "MIGRATION.md").read_text()
    block = md.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block)["iam"]["s3_read_only"] == ["alpha-dag-matrix/lookups/rooms.csv"]
    assert "{args.env" not in yaml.safe_dump(yaml.safe_load(block))
    assert "`python_scripts/constants.py:6`: `s3://alpha-dag-matrix/db/{args.env}`" in md
    assert "Python 3.6 (the legacy `FROM python:3.6`)" in md
    assert not (repo / ".github/workflows/build.yml").exists()  # recognised by DE_ECR and the eu-west-1 ECR


def test_r_report_states_the_versions_from_the_lines(make_repo, cli) -> None:
    repo = make_repo("r_renv")
    assert cli("migrate", "--offline", str(repo), "--yes").exit_code == 0  # the platform's published R base
    md = (repo / "MIGRATION.md").read_text()
    assert "R 4.1.2 (the legacy `FROM r-airflow:4.1.2-2`) -> R 4.6 (the new base " in md
    assert "renv.lock records R 4.1.2; the base has R 4.6" in md


def test_alpine_apk_steps_become_apt_get_and_a_compiler_makes_source_builds_possible() -> None:
    text = ("ARG DE_ECR\nFROM ${DE_ECR}/python:3.7-alpine\nWORKDIR /etl\nCOPY requirements.txt .\n"
            "RUN apk update && \\\n    apk --no-cache --virtual .build-deps add gcc musl-dev libffi-dev && \\\n"
            "    pip install -r requirements.txt && \\\n    apk del .build-deps\n"
            "RUN apk add --no-cache postgresql-libs weirdpkg\nRUN apk del something\n")
    rw = rewrite(parse(text), BASE)
    lines = rw.text.splitlines()
    assert lines[lines.index("COPY requirements.txt .") + 1:lines.index("USER ${CONTAINER_UID}")] == [
        "RUN apt-get update && apt-get install --yes --no-install-recommends gcc libc6-dev libffi-dev python3-dev \\",
        "    && pip install -r requirements.txt",
        "RUN apt-get update && apt-get install --yes --no-install-recommends libpq5 weirdpkg",
    ]
    assert "apk" not in rw.text
    assert rw.notes == ["Dockerfile:9: Alpine packages weirdpkg were kept under the same names in apt-get install: "
                        "check their Debian names"]
    # built by hand on the session's Python base (Python 3.13): markupsafe 2.1.5 compiled with that gcc in 77 s
    pin = Pin(1, "markupsafe", "2.1.5", "markupsafe==2.1.5")
    refused = PinReport(True, "checked", [PinProblem(pin, f"no wheel for Python 3.13 ... build {COMPILER_NOTE}",
                                                     "3.0.0")])
    assert with_compiler(refused).problems == [] and with_compiler(refused).source_builds == [pin]


def test_the_old_images_python_names_and_user_go() -> None:
    text = ("FROM ${DE_ECR}/python:3.9-slim\nWORKDIR /etl\nRUN useradd -m daguser\n"
            "COPY --chown=daguser:daguser scripts/ scripts/\nUSER daguser\n"
            "RUN pip3.9 install --user -r requirements.txt && python3.9 -m pip check"
            " && apt-get install -y python3.9-dev\n"
            "ENTRYPOINT python3.9 scripts/run.py\n")
    lines = rewrite(parse(text), BASE).text.splitlines()
    assert lines[5:] == [
        "COPY scripts/ scripts/",  # daguser is gone, so is its --chown
        # the base's Python is a venv: python3/pip3, no --user; a package name (python3.9-dev) is left alone
        "RUN pip3 install -r requirements.txt && python3 -m pip check && apt-get install -y python3.9-dev",
        "USER ${CONTAINER_UID}",
        'ENTRYPOINT ["python3", "scripts/run.py"]',
    ]


def test_the_first_template_deploy_json_and_home_app(make_repo, cli) -> None:
    repo = make_repo("python_first_template")
    r = cli("migrate", "--offline", str(repo), "--yes", "--json", "--base-image", BASE)
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["detected"]["legacy_signals"] == ["deploy.json"]
    ops = {o["path"]: o["action"] for o in result["operations"]}
    assert ops["deploy.json"] == "delete" and "iam_config.yaml" not in ops
    text = (repo / "Dockerfile").read_text()
    assert "COPY . /opt/analyticalplatform\n" in text and "/home/app" not in text and "adduser" not in text
    assert text.endswith('USER ${CONTAINER_UID}\n\nENTRYPOINT ["python3", "-u", "/opt/analyticalplatform/run.py"]\n')
    cst = yaml.safe_load((repo / "container-structure-test.yml").read_text())
    assert cst["fileExistenceTests"][0]["path"] == "/opt/analyticalplatform/run.py"
    md = (repo / "MIGRATION.md").read_text()
    assert "The job ran with the IAM role `airflow_platform_user_data` (deploy.json) and the policy in " \
        "`iam_config.yaml`" in md
    assert "Pins: no exact pins (name==version) to check." in md
