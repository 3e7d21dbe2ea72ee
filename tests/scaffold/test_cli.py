"""`ap-build scaffold python|r DEST`: what it writes, what it refuses, and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ap_build.scaffold.render import TEMPLATE_FILES, example_files, render_files
from ap_build.scaffold.state import STATE_PATH

DIGEST = "sha256:" + "cd" * 32


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("runtime", ["python", "r"])
def test_scaffold_writes_every_file(cli, tmp_path: Path, runtime: str) -> None:
    dest = tmp_path / "Data_Loader"
    r = cli("scaffold", runtime, str(dest), "--org", "my-org", "--description", "Loads data",
            "--owner-team", "@my-org/data")
    assert r.exit_code == 0, r.stderr
    files = tree(dest)
    assert set(files) == set(TEMPLATE_FILES) | set(example_files(runtime)) | {STATE_PATH}
    assert not [p for p in dest.rglob("*") if "ap-build-tmp" in p.name]  # no staging leftovers
    readme = files["README.md"].decode()
    assert readme.startswith("# Data_Loader\n\nLoads data\n")
    assert "my-org/data-loader:<tag>" in readme  # the ECR repository: lower-cased, _ -> -
    assert files[".github/CODEOWNERS"].decode().splitlines()[-1] == "* @my-org/data"


def test_refuses_non_empty_dest(cli, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    r = cli("scaffold", "python", str(tmp_path))
    assert r.exit_code == 2
    assert f"{tmp_path} is not empty (notes.txt)" in r.stderr and "--force" in r.stderr
    assert "Traceback" not in r.stderr
    assert tree(tmp_path) == {"notes.txt": b"mine\n"}


def test_a_fresh_git_init_counts_as_empty(cli, tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git/HEAD").write_text("ref: refs/heads/main\n")
    assert cli("scaffold", "python", str(tmp_path)).exit_code == 0
    assert (tmp_path / "Dockerfile").is_file()


def test_force_never_overwrites_a_user_file(cli, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM mine\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src/main.py").write_text("print('mine')\n")
    r = cli("scaffold", "python", str(tmp_path), "--force", "--json")
    assert r.exit_code == 0, r.stderr
    actions = {f["path"]: f["action"] for f in json.loads(r.stdout)["files"]}
    assert actions["Dockerfile"] == "skip" and actions["src/main.py"] == "skip"
    assert actions["LICENSE"] == "create"
    assert (tmp_path / "Dockerfile").read_text() == "FROM mine\n"
    assert (tmp_path / "src/main.py").read_text() == "print('mine')\n"
    assert (tmp_path / ".github/workflows/scan-container.yml").is_file()


def test_refuses_to_scaffold_over_a_scaffolded_repository(cli, tmp_path: Path) -> None:
    assert cli("scaffold", "r", str(tmp_path / "x")).exit_code == 0
    r = cli("scaffold", "r", str(tmp_path / "x"), "--force")
    assert r.exit_code == 2 and "--update" in r.stderr


def test_dry_run_prints_files_and_contents_and_writes_nothing(cli, tmp_path: Path) -> None:
    dest = tmp_path / "new"
    r = cli("scaffold", "python", str(dest), "--dry-run")
    assert r.exit_code == 0
    assert not dest.exists()
    expected = render_files("python", None)
    for path in TEMPLATE_FILES:
        assert f"create {path}" in r.stdout
    assert expected["Dockerfile"].splitlines()[0] in r.stdout
    assert "nothing written" in r.stderr


def test_dry_run_json_carries_contents(cli, tmp_path: Path) -> None:
    r = cli("scaffold", "r", str(tmp_path / "n"), "--dry-run", "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["schema_version"] == 1 and doc["mode"] == "create" and doc["runtime"] == "r"
    contents = {f["path"]: f["content"] for f in doc["files"]}
    assert contents["src/main.R"].startswith("# n: the program")
    assert doc["answers"]["repository"] == "ministryofjustice/n"


def test_digest_ref_is_used_as_given_offline(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/engine.sock")  # any engine call would fail
    ref = f"registry.example:5000/team/python-base:3.4.5@{DIGEST}"
    r = cli("scaffold", "python", str(tmp_path / "x"), "--base-image", ref)
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "x/Dockerfile").read_text().startswith(f"FROM {ref}\n")


@pytest.mark.parametrize(
    "args,message",
    [
        (["scaffold", "julia", "x"], "unknown runtime 'julia'"),
        (["scaffold", "python"], "RUNTIME and DEST are required"),
        (["scaffold", "python", "x", "--base-image", "base@" + DIGEST], "has no tag"),
        (["scaffold", "python", "x", "--base-image", "base:1.0@sha256:12"], "64"),
        (["scaffold", "python", "x", "--name", "no spaces"], "not a valid GitHub name"),
        (["scaffold", "--update"], "--update needs DEST"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(cli, tmp_path: Path, monkeypatch, args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    r = cli(*args)
    assert r.exit_code == 2
    assert message in r.stderr
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()


def test_a_file_in_the_way_of_a_folder(cli, tmp_path: Path) -> None:
    (tmp_path / ".github").write_text("oops\n")
    r = cli("scaffold", "python", str(tmp_path), "--force")
    assert r.exit_code == 2 and "is a file where ap-build needs a folder" in r.stderr
    assert tree(tmp_path) == {".github": b"oops\n"}
