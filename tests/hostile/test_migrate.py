"""Hostile input to `migrate`: symlinks out of the repository, odd Dockerfiles, markup and bad options."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from .support import assert_clean, snapshot

FIXTURES = Path(__file__).parents[1] / "migrate" / "fixtures"


@pytest.fixture
def box(tmp_path: Path, outside: Path) -> tuple[Path, Path]:
    """(a legacy Python repository, the `outside` folder)."""
    repo = shutil.copytree(FIXTURES / "python_basic", tmp_path / "repo")
    return repo, outside


def _migrate(cli, repo: Path, *args: str):
    return cli("migrate", str(repo), "--no-diff", *args)


def test_github_folder_linked_out_of_the_repository(cli, box) -> None:
    repo, outside = box
    shutil.move(repo / ".github", outside / "gh")
    (repo / ".github").symlink_to(outside / "gh")
    before = snapshot(outside)
    for args in ((), ("--yes",)):
        assert_clean(_migrate(cli, repo, *args), (2,), "outside")
    assert snapshot(outside) == before


@pytest.mark.parametrize("name", [".trivyignore", "MIGRATION.md", ".github/dependabot.yml"])
@pytest.mark.parametrize("dangling", [False, True])
def test_file_linked_out_of_the_repository_is_kept_as_a_link(cli, box, name: str, dangling: bool) -> None:
    repo, outside = box
    target = outside / ("nothing-here" if dangling else "victim.txt")
    (repo / name).symlink_to(target)
    before = snapshot(outside)
    r = _migrate(cli, repo, "--yes")
    assert_clean(r, (0,), "migrated")
    assert (repo / name).is_symlink() and os.readlink(repo / name) == str(target)
    assert snapshot(outside) == before
    assert (repo / "Dockerfile").read_text().startswith("FROM ghcr.io/")  # the rest was migrated


def test_file_linked_inside_the_repository_stays_a_link(cli, box) -> None:
    repo, _ = box
    (repo / "config").mkdir()
    (repo / "config" / "trivyignore").write_text("CVE-2024-0001\n")
    (repo / ".trivyignore").symlink_to("config/trivyignore")
    assert_clean(_migrate(cli, repo, "--yes"), (0,))
    assert (repo / ".trivyignore").is_symlink()
    assert (repo / "config" / "trivyignore").read_text() == "CVE-2024-0001\n"  # yours is kept


def test_dockerfile_linked_out_of_the_repository(cli, box) -> None:
    repo, outside = box
    (outside / "Dockerfile").write_bytes((repo / "Dockerfile").read_bytes())
    (repo / "Dockerfile").unlink()
    (repo / "Dockerfile").symlink_to(outside / "Dockerfile")
    before = snapshot(outside)
    assert_clean(_migrate(cli, repo, "--yes"), (2,), "outside")
    assert snapshot(outside) == before


@pytest.mark.parametrize(
    "dockerfile,fragment",
    [
        ("FROM\n", "Dockerfile:1: FROM names no image"),
        ("ARG DE_ECR\nFROM   \\\n\n", "FROM names no image"),
        ("ARG DE_ECR\nFROM --platform=linux/amd64\n", "FROM names no image"),
        ("RUN echo hi\n", "no FROM instruction"),
        ("FROM [/]\n", "FROM [/]"),
        ("ARG DE_ECR\nFROM ${DE_ECR}/python:3.9\nRUN <<EOF\n", "never closed"),
    ],
)
def test_odd_dockerfiles(cli, box, dockerfile: str, fragment: str) -> None:
    repo, _ = box
    (repo / "Dockerfile").write_text(dockerfile)
    assert_clean(_migrate(cli, repo), (2,), fragment)


def test_dockerfile_that_is_a_folder(cli, box) -> None:
    repo, _ = box
    (repo / "Dockerfile").unlink()
    (repo / "Dockerfile").mkdir()
    assert_clean(_migrate(cli, repo), (2,))


def test_markup_in_the_repository_is_data(cli, box, tmp_path: Path) -> None:
    repo, _ = box
    with (repo / "Dockerfile").open("a") as fh:
        fh.write("RUN echo '[/] [bold]'\nRUN echo '\x1b[2J'\n")
    (repo / "scripts" / "[red]x[/].py").mkdir(parents=True)
    marked = tmp_path / "[bold]repo"
    repo.rename(marked)
    assert_clean(cli("migrate", str(marked)), (2,), "--name '[bold]repo' is not a valid GitHub name")
    r = cli("migrate", str(marked), "--name", "repo")
    assert_clean(r, (0,), "[bold]repo")
    assert "echo '[/] [bold]'" in r.stdout
    assert "\x1b" not in r.stdout and "echo '\\x1b[2J'" in r.stdout  # shown, not obeyed


@pytest.mark.parametrize(
    "option,value",
    [("--name", "x\ny"), ("--name", "[/]"), ("--org", "../.."), ("--base-image", "x\ny"),
     ("--base-image", f"x:1@sha256:{'a' * 64}\nRUN evil")],
)
def test_bad_options(cli, box, option: str, value: str) -> None:
    repo, _ = box
    before = snapshot(repo)
    assert_clean(_migrate(cli, repo, "--yes", option, value), (2,))
    assert snapshot(repo) == before


def test_unreadable_file(cli) -> None:
    """As root (CI), the real CLI runs as `nobody` (setpriv), for whom a mode-0 file is unreadable."""
    work = Path(tempfile.mkdtemp(prefix="ap-build-unreadable-"))
    try:
        work.chmod(0o755)
        repo = shutil.copytree(FIXTURES / "python_basic", work / "repo")
        (repo / "secret.txt").write_text("x")
        (repo / "secret.txt").chmod(0)
        if os.geteuid() != 0:
            r = _migrate(cli, repo)
        else:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("root, and no setpriv to drop to an unprivileged user")
            proc = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                                   "-m", "ap_build.cli", "migrate", str(repo), "--no-diff"],
                                  capture_output=True, text=True, check=False, cwd=work)
            r = SimpleNamespace(exit_code=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)
        assert_clean(r, (2,), "secret.txt: cannot read (Permission denied)")
    finally:
        shutil.rmtree(work)
