"""Hostile input to `scaffold`: answers that would break the generated files, a recorded state a pull
request has changed, and symlinks out of DEST. Nothing outside DEST ever changes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ap_build.scaffold.state import STATE_PATH

from .support import assert_clean, snapshot


@pytest.fixture
def box(tmp_path: Path, outside: Path) -> tuple[Path, Path]:
    """(where DEST goes, the `outside` folder)."""
    (tmp_path / "work").mkdir()
    return tmp_path / "work", outside


@pytest.mark.parametrize(
    "option,value,fragment",
    [
        ("--name", "x\ny", "--name 'x\\ny' is not a valid GitHub name"),
        ("--name", "x\n", "--name 'x\\n'"),
        ("--name", "[/]", "--name '[/]'"),
        ("--org", "../..", "--org '../..'"),
        ("--repository", "team/app\n", "--repository 'team/app\\n'"),
        ("--repository", 'a"b', "--repository"),
        ("--registry", "a: b", "--registry 'a: b' is not a registry host"),
        ("--registry", "ecr.example\n  evil: 1", "is not a registry host"),
        ("--registry", "ecr.example:99999", "is not a registry host"),
        ("--registry", "user@ecr.example", "is not a registry host"),
        ("--registry", "ecr.example/path", "is not a registry host"),
        ("--registry", "[/]", "is not a registry host"),
        ("--description", "a\x00b", "--description"),
        ("--description", "line\x1b[31m", "--description"),
        ("--owner-team", "@team\n* @evil", "--owner-team"),
        ("--base-image", f"x:1@sha256:{'a' * 64}\nRUN evil", "--base-image"),
    ],
)
def test_bad_answers_are_refused_before_anything_is_written(cli, box, option: str, value: str,
                                                            fragment: str) -> None:
    work, _ = box
    r = cli("scaffold", "python", str(work / "repo"), option, value)
    assert_clean(r, (2,), fragment)
    assert not (work / "repo").exists()


def test_markup_in_dest_and_description_is_data(cli, box) -> None:
    work, _ = box
    dest = work / "[bold]repo[red]"
    r = cli("scaffold", "python", str(dest), "--name", "repo", "--description", "[/] loads [red]data")
    assert_clean(r, (0,), "[bold]repo[red]")
    assert "[/] loads [red]data" in (dest / "README.md").read_text()
    for wf in (dest / ".github" / "workflows").iterdir():
        yaml.safe_load(wf.read_text())


@pytest.fixture
def repo(cli, box) -> Path:
    work, _ = box
    r = cli("scaffold", "python", str(work / "repo"))
    assert r.exit_code == 0, r.stderr
    return work / "repo"


def _tamper(repo: Path, edit) -> None:
    state = repo / STATE_PATH
    doc = yaml.safe_load(state.read_text())
    edit(doc)
    state.write_text(yaml.safe_dump(doc))


@pytest.mark.parametrize(
    "edit,fragment",
    [
        (lambda d: d["base"].update({"../../outside/victim.txt": "precious\n"}), "is not a relative path inside"),
        (lambda d: d["base"].update({"/etc/hostname": "x"}), "is not a relative path inside"),
        (lambda d: d["base"].update({"a/../../../outside/victim.txt": "x"}), "is not a relative path inside"),
        (lambda d: d["base"].update({".git/config": "x"}), "is not a template file ap-build manages"),
        (lambda d: d["base"].update({STATE_PATH: "x"}), "is not a template file ap-build manages"),
        (lambda d: d["base"].update({"README.md": ["a", "list"]}), "is not a string"),
        (lambda d: d["base"].update({7: "x"}), "is not a file path"),
        (lambda d: d.update(runtime="perl"), "runtime 'perl'"),
        (lambda d: d.update(template_version="[/]"), "template_version '[/]'"),
        (lambda d: d.update(base=["x"]), "must be mappings"),
        (lambda d: d["answers"].update(name="x\nimport os"), "--name"),
        (lambda d: d["answers"].update(registry="a: b"), "--registry"),
        (lambda d: d["answers"].update(year="2020"), "answers.year"),
    ],
)
def test_update_validates_the_recorded_state(cli, box, repo: Path, edit, fragment: str) -> None:
    _, outside = box
    _tamper(repo, edit)
    before, outside_before = snapshot(repo), snapshot(outside)
    r = cli("scaffold", "--update", str(repo))
    assert_clean(r, (2,), fragment)
    assert f"{STATE_PATH}" in r.stderr
    assert snapshot(repo) == before and snapshot(outside) == outside_before


def test_update_error_names_the_line(cli, repo: Path) -> None:
    _tamper(repo, lambda d: d["base"].update({"../victim.txt": "x"}))
    r = cli("scaffold", "--update", str(repo))
    line = next(n for n, text in enumerate((repo / STATE_PATH).read_text().splitlines(), 1) if "../victim" in text)
    assert f"{STATE_PATH}:{line}:" in r.stderr


def test_force_into_a_dest_whose_github_folder_leaves_it(cli, box) -> None:
    work, outside = box
    dest = work / "repo"
    dest.mkdir()
    (dest / ".github").symlink_to(outside)
    r = cli("scaffold", "python", str(dest), "--force")
    assert_clean(r, (2,), "refused")
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert sorted(p.name for p in dest.iterdir()) == [".github"]  # all or nothing


def test_update_through_a_file_symlink_out_of_dest_is_refused(cli, box, repo: Path) -> None:
    _, outside = box
    (repo / "Dockerfile").unlink()
    (repo / "Dockerfile").symlink_to(outside / "victim.txt")
    r = cli("scaffold", "--update", str(repo))
    assert_clean(r, (2,), "outside")
    assert (outside / "victim.txt").read_text() == "precious\n"


def test_state_file_symlinked_out_of_dest_is_refused(cli, box, repo: Path) -> None:
    _, outside = box
    (outside / "scaffold.yml").write_text((repo / STATE_PATH).read_text())
    (repo / STATE_PATH).unlink()
    (repo / STATE_PATH).symlink_to(outside / "scaffold.yml")
    assert_clean(cli("scaffold", "--update", str(repo)), (2,), "outside")


def test_in_dest_symlink_is_kept_and_written_through(cli, repo: Path) -> None:
    """A link that stays in the repository stays a link; --update merges into its target."""
    (repo / "docker").mkdir()
    (repo / "Dockerfile").rename(repo / "docker" / "Dockerfile")
    (repo / "Dockerfile").symlink_to("docker/Dockerfile")
    _tamper(repo, lambda d: d["base"].update(Dockerfile=d["base"]["Dockerfile"] + "# old template line\n"))
    (repo / "docker" / "Dockerfile").write_text((repo / "docker" / "Dockerfile").read_text() + "# old template line\n")
    r = cli("scaffold", "--update", str(repo))
    assert_clean(r, (0,), "Dockerfile")
    assert (repo / "Dockerfile").is_symlink()
    assert "# old template line" not in (repo / "docker" / "Dockerfile").read_text()


def test_written_files_are_0644_whatever_the_umask(cli, box) -> None:
    import os

    work, _ = box
    old = os.umask(0o077)
    try:
        assert cli("scaffold", "python", str(work / "repo")).exit_code == 0
    finally:
        os.umask(old)
    modes = {k: v[1] for k, v in snapshot(work / "repo").items() if v[0] == "file"}
    assert set(modes.values()) == {0o644}, modes
