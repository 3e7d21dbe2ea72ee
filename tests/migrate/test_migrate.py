"""`ap-build migrate` on every fixture repository: plan, apply, nothing lost, idempotent, refusals, crashes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from ap_build.errors import ApBuildError
from ap_build.migrate import apply as apply_mod
from ap_build.migrate.apply import read_snapshot
from ap_build.migrate.detect import detect
from ap_build.migrate.dockerfile import parse
from ap_build.migrate.plan import ADDED_TEMPLATE_FILES, TRANSFORMED, make_plan
from ap_build.migrate.workflows import legacy_release_workflows

from .conftest import LEGACY, git, tree

BASE = "127.0.0.1:5000/ap-build/python-base:1.0.0@sha256:" + "b" * 64


def files(repo: Path) -> dict[str, bytes]:
    return {p.relative_to(repo).as_posix(): p.read_bytes() for p in repo.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(repo).parts}


@pytest.mark.parametrize("name", LEGACY)
def test_plan_writes_nothing(name: str, make_repo, cli) -> None:
    repo = make_repo(name)
    before = tree(repo)
    r = cli("migrate", "--offline", str(repo))
    assert r.exit_code == 0, r.stderr
    assert "plan only: nothing written" in r.stderr
    legacy = detect(files(repo), set(files(repo))).workflows
    assert legacy  # every fixture has one, under whatever name (a workflow, or the first template's deploy.json)
    for path in legacy:
        assert f"delete {path}" in " ".join(r.stdout.split())
    assert "--- a/Dockerfile" in r.stdout and "+++ b/Dockerfile" in r.stdout
    assert tree(repo) == before


@pytest.mark.parametrize("name", LEGACY)
def test_apply_keeps_everything_else_byte_identical_and_is_idempotent(name: str, make_repo, cli) -> None:
    repo = make_repo(name)
    before = tree(repo)
    r = cli("migrate", "--offline", str(repo), "--yes", "--json")
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["applied"] is True and result["detected"]["kind"] == "legacy"
    after = tree(repo)
    legacy = {o["path"] for o in result["operations"] if o["action"] == "delete" and not o["path"].startswith(".grype")}
    # every file outside the transformation list is byte-identical, and none disappeared but the legacy workflows
    for path, digest in before.items():  # requirements.txt included: only --upgrade-pins changes a pin
        if path not in (TRANSFORMED - {"requirements.txt"}) | legacy:
            assert after.get(path) == digest, path
    assert set(after) - set(before) <= TRANSFORMED
    assert legacy and not legacy & set(after)
    assert legacy_release_workflows(files(repo), set(files(repo))) == {}  # none is left behind
    assert not (repo / "deploy.json").exists()
    for path in (*ADDED_TEMPLATE_FILES, "MIGRATION.md"):
        assert path in after, path
    instructions = parse((repo / "Dockerfile").read_bytes().decode()).instructions()
    assert not [i for i in instructions if "DE_ECR" in i.raw or "chmod -R 777" in i.raw or "/etl" in i.raw]
    assert instructions[-1].keyword in ("ENTRYPOINT", "CMD") and instructions[-1].value.startswith("[")
    users = [i.value for i in instructions if i.keyword == "USER"]
    assert users[-2:] == ["root", "${CONTAINER_UID}"]
    # migrating again is a no-op
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "migrated")
    again = cli("migrate", "--offline", str(repo), "--yes")
    assert again.exit_code == 0, again.stderr
    assert "already migrated" in again.stderr
    assert tree(repo) == after
    js = json.loads(cli("migrate", "--offline", str(repo), "--json").stdout)
    assert js["detected"]["kind"] == "migrated" and js["noop"] and js["operations"] == []


@pytest.mark.parametrize("name", LEGACY)
def test_operations_match_the_files(name: str, make_repo) -> None:
    """Each planned operation's diff describes exactly the bytes that get written."""
    repo = make_repo(name)
    plan = make_plan(read_snapshot(repo), BASE)
    for op in plan.ops:
        if op.action == "change":
            assert op.old == (repo / op.path).read_bytes()
            assert op.diff().startswith(f"--- a/{op.path}\n+++ b/{op.path}\n")
        if op.action == "add":
            assert not (repo / op.path).exists()
    apply_mod.apply_plan(plan)
    for op in plan.writes:
        assert (repo / op.path).read_bytes() == op.new


def test_crlf_line_endings_survive(make_repo, cli) -> None:
    repo = make_repo("python_multistage_crlf")
    old = (repo / "Dockerfile").read_bytes()
    assert cli("migrate", "--offline", str(repo), "--yes").exit_code == 0
    new = (repo / "Dockerfile").read_bytes()
    assert old.count(b"\r\n") > 10 and new.count(b"\n") == new.count(b"\r\n")
    assert (repo / "requirements.txt").read_bytes() == b"numpy==1.21.6\r\npandas==1.3.5\r\nboto3==1.26.0\r\n" \
        b"awswrangler==2.19.0\r\n"


def test_dirty_tree_is_refused_unless_forced(make_repo, cli) -> None:
    repo = make_repo("python_basic")
    (repo / "scripts/run.py").write_text("print('work in progress')\n")
    before = tree(repo)
    r = cli("migrate", "--offline", str(repo), "--yes")
    assert r.exit_code == 2
    assert "uncommitted changes (scripts/run.py)" in r.stderr and "--force" in r.stderr
    assert tree(repo) == before
    (repo / "notes.txt").write_text("untracked\n")
    assert "notes.txt" in cli("migrate", "--offline", str(repo), "--yes").stderr
    # the plan alone is fine on a dirty tree; --force applies and keeps the uncommitted edit
    assert cli("migrate", "--offline", str(repo)).exit_code == 0
    r = cli("migrate", "--offline", str(repo), "--yes", "--force")
    assert r.exit_code == 0, r.stderr
    assert (repo / "scripts/run.py").read_text() == "print('work in progress')\n"


def test_unknown_layout_is_refused_with_what_was_expected(make_repo, cli, tmp_path: Path) -> None:
    repo = make_repo("unknown")
    before = tree(repo)
    r = cli("migrate", "--offline", str(repo), "--yes")
    assert r.exit_code == 2
    assert "not a layout ap-build migrate knows (Dockerfile FROM node:20)" in r.stderr
    assert "expected a legacy Data Engineering template repository" in r.stderr
    assert tree(repo) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli("migrate", "--offline", str(empty))
    assert r.exit_code == 2 and "no Dockerfile" in r.stderr
    r = cli("migrate", str(tmp_path / "missing"))
    assert r.exit_code == 2 and "no such directory" in r.stderr


def test_legacy_marker_with_an_unknown_base_is_refused(make_repo, cli) -> None:
    repo = make_repo("python_basic")
    (repo / "Dockerfile").write_text("ARG DE_ECR\nFROM ${DE_ECR}/node:20\nWORKDIR /etl\n")
    git(repo, "commit", "-qam", "node")
    r = cli("migrate", "--offline", str(repo))
    assert r.exit_code == 2
    assert "Dockerfile:2: the final stage is FROM ${DE_ECR}/node:20" in r.stderr


def test_unclosed_heredoc_is_reported_with_file_and_line(make_repo, cli) -> None:
    repo = make_repo("python_heredoc")
    text = (repo / "Dockerfile").read_text().replace("\nEOT\n", "\n")
    (repo / "Dockerfile").write_text(text)
    r = cli("migrate", "--offline", str(repo))
    assert r.exit_code == 2
    assert "Dockerfile:7: heredoc <<EOT is never closed" in r.stderr


@pytest.mark.parametrize("fail_after", [0, 1, 4, 8])
def test_crash_mid_apply_leaves_each_file_old_or_new(fail_after: int, make_repo, monkeypatch) -> None:
    repo = make_repo("python_multistage_crlf")
    old = tree(repo)
    plan = make_plan(read_snapshot(repo), BASE)
    new = {op.path: op.new for op in plan.writes}
    real_replace = os.replace
    calls = {"n": 0}

    def flaky(src, dst, **dir_fds):
        if calls["n"] >= fail_after:
            raise OSError(5, "disk on fire")
        calls["n"] += 1
        real_replace(src, dst, **dir_fds)

    monkeypatch.setattr(os, "replace", flaky)  # the safe writer's rename (ap_build.fsio)
    with pytest.raises(ApBuildError, match=r"cannot write \(disk on fire\)"):
        apply_mod.apply_plan(plan)
    monkeypatch.setattr(os, "replace", real_replace)
    now = tree(repo)
    written = 0
    for path in set(old) | set(now):
        data = (repo / path).read_bytes() if path in now else None
        if path in new and data == new[path]:
            written += 1
            continue
        assert now.get(path) == old.get(path), f"{path} is neither old nor new"
    assert written == fail_after
    assert not [p for p in now if p.endswith(".ap-build-tmp")]  # no temp files left behind
    assert (repo / ".github/workflows/ecr_push.yml").exists()  # deletes come after every write
    # re-running completes the migration
    apply_mod.apply_plan(make_plan(read_snapshot(repo), BASE))
    assert not (repo / ".github/workflows/ecr_push.yml").exists()
    final = make_plan(read_snapshot(repo), BASE)
    assert final.detection.kind == "migrated" and final.noop


def test_crash_while_writing_a_file_leaves_it_old(make_repo, monkeypatch) -> None:
    """Interrupted after the bytes are written but before they are durable: the target is untouched."""
    repo = make_repo("python_basic")
    old = tree(repo)
    plan = make_plan(read_snapshot(repo), BASE)

    def boom(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(apply_mod.os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        apply_mod.apply_plan(plan)
    assert tree(repo) == old  # Dockerfile (the first write) is wholly old; no temp file is left


def test_file_modes_are_kept(make_repo, cli) -> None:
    repo = make_repo("python_basic")
    (repo / "Dockerfile").chmod(0o640)  # git tracks only the executable bit: the tree stays clean
    assert cli("migrate", "--offline", str(repo), "--yes").exit_code == 0
    assert (repo / "Dockerfile").stat().st_mode & 0o777 == 0o640


def test_report_and_starter_manifest(make_repo, cli) -> None:
    repo = make_repo("r_python", remote="git@github.com:moj-analytical-services/R_Job.git")
    r = cli("migrate", "--offline", str(repo), "--yes", "--base-image", BASE)
    assert r.exit_code == 0, r.stderr
    md = (repo / "MIGRATION.md").read_text()
    assert "legacy R template with Python (botor)" in md
    for expected in ("airflow-<environment>-<project>-<workflow>", "eu-west-2",
                     "R 4.1.2 (the legacy `FROM r-airflow:4.1.2-2`) -> R (version not known)",
                     "renv.lock records R 4.1.2", "Matrix 1.3-4", "The R base has no Python",
                     "`Dockerfile.nopython` as `Dockerfile`", "moj-analytical-services/r-job:<tag>",
                     "arn:aws:iam::189157455002:role/data-engineering-ecr-push"):
        assert expected in md, expected
    block = md.split("```yaml\n", 1)[1].split("```", 1)[0]
    manifest = yaml.safe_load(block)
    assert manifest["dag"] == {"repository": "moj-analytical-services/R_Job", "tag": "RELEASE-TAG"}
    assert manifest["iam"]["s3_read_only"] == ["alpha-r-job/input/data.csv", "alpha-r-job/output/data.csv"]
    assert manifest["secrets"] == ["api-key"]
    assert "scripts/run.R:3" in block
    # the starter is a valid manifest for `ap-build workflow validate` once copied into place
    from ap_build.workflow.settings import Identity
    from ap_build.workflow.validate import validate_text

    assert validate_text(block, "workflow.yml", Identity("development", "r-job", "run")).problems == []
    nopy = (repo / "Dockerfile.nopython").read_text()
    assert nopy.startswith(f"FROM {BASE}\n") and "python3" not in nopy
    assert "python3 python3-venv" in (repo / "Dockerfile").read_text()


def test_python_report_names_etl_in_code_and_the_program(make_repo, cli) -> None:
    repo = make_repo("python_multistage_crlf")
    assert cli("migrate", "--offline", str(repo), "--yes").exit_code == 0
    md = (repo / "MIGRATION.md").read_text()
    assert "Python 3.10 (the legacy `FROM python:3.10-slim`) -> Python 3.12 (the new base " in md
    assert "Pins: not checked: --offline" in md
    assert "`scripts/run.py:8`" in md  # the code's own /etl path is reported, not rewritten
    assert '"/etl/data/lookup.csv"' in (repo / "scripts/run.py").read_text()
    cst = yaml.safe_load((repo / "container-structure-test.yml").read_text())
    assert cst["fileExistenceTests"][0]["path"] == "/opt/analyticalplatform/scripts/run.py"
    assert cst["metadataTest"]["user"] == "1000"


def test_existing_template_file_is_kept_not_overwritten(make_repo, cli) -> None:
    repo = make_repo("python_basic")
    (repo / ".trivyignore").write_text("CVE-2020-0001\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "own ignores")
    r = cli("migrate", "--offline", str(repo), "--yes", "--json")
    ops = {o["path"]: o["action"] for o in json.loads(r.stdout)["operations"]}
    assert ops[".trivyignore"] == "keep"
    assert (repo / ".trivyignore").read_text() == "CVE-2020-0001\n"


def test_json_plan_schema(make_repo, cli) -> None:
    repo = make_repo("python_heredoc")
    r = cli("migrate", "--offline", str(repo), "--json", "--base-image", BASE)
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert set(data) == {"path", "detected", "base_image", "operations", "dockerfile_changes", "notes", "noop",
                         "applied", "versions", "pins"}
    assert data["pins"] == {"checked": False, "summary": "not checked: --offline", "problems": [],
                            "source_builds": [], "not_checked": []}
    assert data["applied"] is False and data["base_image"] == BASE
    assert data["detected"] == {"kind": "legacy", "runtime": "python", "uses_python": False,
                                "label": "legacy Python template",
                                "legacy_signals": [".github/workflows/ecr_push.yml", "Dockerfile uses ${DE_ECR}",
                                                   "WORKDIR /etl"]}
    change = next(o for o in data["operations"] if o["path"] == "Dockerfile")
    assert change["action"] == "change" and "+CMD [\"python3\", \"scripts/run.py\"]" in change["diff"]


def test_bad_base_image_is_refused(make_repo, cli) -> None:
    repo = make_repo("python_basic")
    r = cli("migrate", "--offline", str(repo), "--base-image", "example/python:1.0@sha256:nothex")
    assert r.exit_code == 2 and "digest" in r.stderr


def test_not_a_git_tree_is_migrated_without_the_dirty_check(make_repo, cli) -> None:
    repo = make_repo("r_plain", use_git=False)
    assert cli("migrate", "--offline", str(repo), "--yes").exit_code == 0
    assert (repo / "MIGRATION.md").exists()


def test_name_and_org_options_and_invalid_names(make_repo, cli) -> None:
    repo = make_repo("python_basic")
    r = cli("migrate", "--offline", str(repo), "--json", "--name", "My_Job", "--org", "ministryofjustice")
    assert r.exit_code == 0, r.stderr
    ops = {o["path"]: o for o in json.loads(r.stdout)["operations"]}
    assert "ecr-repository: \"ministryofjustice/my-job\"" in ops[".github/workflows/release-container.yml"]["diff"]
    assert "repository: ministryofjustice/My_Job" in ops["MIGRATION.md"]["diff"]
    r = cli("migrate", "--offline", str(repo), "--name", "bad name")
    assert r.exit_code == 2 and "not a valid GitHub name" in r.stderr


def test_non_utf8_dockerfile_is_reported(make_repo, cli) -> None:
    repo = make_repo("r_python")
    (repo / "Dockerfile.nopython").write_bytes(b"FROM x\n# caf\xe9\n")
    r = cli("migrate", "--offline", str(repo), "--force")
    assert r.exit_code == 2 and "Dockerfile.nopython:2: not UTF-8 text (byte 12)" in r.stderr
