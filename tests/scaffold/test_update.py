"""`--update`: a three-way merge that keeps the user's edits, applies template changes, reports conflicts."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ap_build.resources import data_dir
from ap_build.scaffold.merge import merge3
from ap_build.scaffold.plan import plan_create, plan_update
from ap_build.scaffold.render import load_manifest

OLD_CHECKOUT = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2"
OLD_AP_BUILD = "a594c1715925e6473580b10b8c26fb9c3c1204d5"  # an older ap-build commit: the pin in the test's version 1


# --- the pure plan, with the real merge ---------------------------------------------------------------
def test_plan_update_decides_per_file() -> None:
    base = {"same": "a\n", "ours": "a\nb\nc\n", "theirs": "x\n", "both": "1\n2\n3\n4\n5\n", "gone": "g\n",
            "gone-edited": "g\n", "deleted": "d\n", "clash": "k\n"}
    current = {"same": "a\n", "ours": "a\nB\nc\n", "theirs": "x\n", "both": "1\nTWO\n3\n4\n5\n", "gone": "g\n",
               "gone-edited": "G\n", "deleted": None, "clash": "mine\n", "new": None}
    new = {"same": "a\n", "ours": "a\nb\nc\n", "theirs": "y\n", "both": "1\n2\n3\n4\nFIVE\n",
           "deleted": "d2\n", "clash": "theirs\n", "new": "n\n"}
    actions = {a.path: a for a in plan_update(base, current, new, merge3)}
    assert {p: a.action for p, a in actions.items()} == {
        "same": "unchanged", "ours": "keep", "theirs": "update", "both": "merge", "gone": "delete",
        "gone-edited": "orphan", "deleted": "missing", "clash": "conflict", "new": "create",
    }
    assert actions["theirs"].content == "y\n"
    assert actions["both"].content == "1\nTWO\n3\n4\nFIVE\n"
    assert actions["clash"].conflicts == 1
    assert "<<<<<<< yours\nmine\n=======\ntheirs\n>>>>>>> template new\n" in actions["clash"].content


def test_plan_create_never_overwrites() -> None:
    actions = plan_create({"a": "1\n", "b": "2\n", "c": "3\n"}, {"a": None, "b": "2\n", "c": "mine\n"})
    assert [(a.path, a.action) for a in actions] == [("a", "create"), ("b", "unchanged"), ("c", "skip")]


# --- through the CLI, with two template versions -------------------------------------------------------
def make_templates(root: Path, version: int, edit: Callable[[Path], None] | None = None) -> Path:
    dest = root / f"templates-v{version}"
    shutil.copytree(data_dir("templates"), dest)
    toml = dest / "template.toml"
    text = toml.read_text()
    toml.write_text(re.sub(r"(?m)^version = \d+$", f"version = {version}", text, count=1))
    if edit:
        edit(dest)
    return dest


def old_template(t: Path) -> None:
    """Version 1 of the test template: older checkout and ap-build pins and an older Dockerfile comment."""
    toml = t / "template.toml"
    text = toml.read_text().replace(
        'sha = "de0fac2e4500dabe0009e67214ff5f5447ce83dd", version = "v6.0.2"',
        'sha = "11bd71901bbe5b1630ceea73d27597364c9af683", version = "v4.2.2"')
    toml.write_text(re.sub(r'(?m)^sha = "[0-9a-f]{40}"$', f'sha = "{OLD_AP_BUILD}"', text, count=1))
    df = t / "common/Dockerfile"
    df.write_text(df.read_text().replace("# Install as root, then hand", "# Install as root and then hand"))


@pytest.fixture
def two_versions(tmp_path: Path) -> tuple[Path, Path]:
    return make_templates(tmp_path, 1, old_template), make_templates(tmp_path, 2)


def test_update_keeps_user_edit_and_applies_template_change(cli, tmp_path: Path, two_versions) -> None:
    v1, v2 = two_versions
    repo = tmp_path / "repo"
    assert cli("scaffold", "python", str(repo), "--templates", str(v1)).exit_code == 0
    wf = repo / ".github/workflows/dependency-review.yml"
    assert OLD_CHECKOUT in wf.read_text()
    test_wf = repo / ".github/workflows/test-container.yml"
    assert test_wf.read_text().count(OLD_AP_BUILD) == 2  # `uses:` and `ap-build-ref`
    # The user's edit in a generated caller: no SARIF upload (the template moves the pin on the lines around).
    scan_wf = repo / ".github/workflows/scan-container.yml"
    scan_wf.write_text(scan_wf.read_text() + "      upload-sarif: false\n")
    # The user's edits: a line in the Dockerfile (the file the template also changes), the README.
    dockerfile = repo / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(
        "COPY src/ .\n", "COPY src/ .\nCOPY data/ data/\n"))
    readme = repo / "README.md"
    readme.write_text(readme.read_text() + "\n## Our notes\n\nKeep me.\n")
    main_py = repo / "src/main.py"
    main_py.write_text("print('my program')\n")

    r = cli("scaffold", "--update", str(repo), "--templates", str(v2), "--json")
    assert r.exit_code == 0, r.stderr
    result = yaml.safe_load(r.stdout)
    actions = {f["path"]: f["action"] for f in result["files"]}
    assert actions["Dockerfile"] == "merge"
    assert actions["README.md"] == "merge"  # the README names the template version
    assert actions[".trivyignore"] == "unchanged"
    assert actions[".github/workflows/test-container.yml"] == "update"
    assert actions[".github/workflows/scan-container.yml"] == "merge"
    assert actions["LICENSE"] == "unchanged"
    assert (result["from_template_version"], result["template_version"]) == (1, 2)

    text = dockerfile.read_text()
    assert "COPY data/ data/\n" in text  # the user's edit survived
    assert "# Install as root, then hand" in text and "# Install as root and then hand" not in text  # template
    assert "Keep me." in readme.read_text() and "(template version 2)" in readme.read_text()
    assert OLD_CHECKOUT not in wf.read_text() and "actions/checkout@de0fac2e" in wf.read_text()
    pin = load_manifest()["ap_build"]["sha"]
    for caller in (test_wf, scan_wf):  # the ap-build pin moved in both places, the user's line kept
        assert OLD_AP_BUILD not in caller.read_text() and caller.read_text().count(pin) == 2
    assert scan_wf.read_text().endswith("      upload-sarif: false\n")
    assert main_py.read_text() == "print('my program')\n"  # example program files belong to the user
    state = yaml.safe_load((repo / ".ap-build/scaffold.yml").read_text())
    assert state["template_version"] == 2
    assert state["base"]["Dockerfile"] != text  # the base is the template's file, not the user's
    assert "COPY data/" not in state["base"]["Dockerfile"]

    # A second update is a no-op.
    r = cli("scaffold", "--update", str(repo), "--templates", str(v2), "--json")
    assert r.exit_code == 0
    assert set(yaml.safe_load(r.stdout)["summary"]) <= {"unchanged", "keep"}


def test_update_reports_conflicts_as_conflicts(cli, tmp_path: Path, two_versions) -> None:
    v1, v2 = two_versions
    repo = tmp_path / "repo"
    assert cli("scaffold", "python", str(repo), "--templates", str(v1)).exit_code == 0
    dockerfile = repo / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(
        "# Install as root and then hand", "# We install as root and then hand"))
    r = cli("scaffold", "--update", str(repo), "--templates", str(v2))
    assert r.exit_code == 1
    assert "conflict" in r.stderr and "Dockerfile" in r.stderr
    text = dockerfile.read_text()
    assert "<<<<<<< yours\n# We install as root and then hand" in text
    assert "=======\n# Install as root, then hand" in text
    # The non-conflicting template change is still applied.
    assert "actions/checkout@de0fac2e" in (repo / ".github/workflows/dependency-review.yml").read_text()


def test_update_dry_run_writes_nothing(cli, tmp_path: Path, two_versions) -> None:
    v1, v2 = two_versions
    repo = tmp_path / "repo"
    assert cli("scaffold", "python", str(repo), "--templates", str(v1)).exit_code == 0
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    r = cli("scaffold", "--update", str(repo), "--templates", str(v2), "--dry-run")
    assert r.exit_code == 0
    assert "update" in r.stdout and "nothing written" in r.stderr
    assert {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()} == before


def test_update_refuses_a_repository_it_did_not_make(cli, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    r = cli("scaffold", "--update", str(tmp_path))
    assert r.exit_code == 2
    assert "was not made by ap-build scaffold" in r.stderr
    assert "Traceback" not in r.stderr


def test_update_refuses_a_corrupt_record(cli, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    assert cli("scaffold", "r", str(repo)).exit_code == 0
    (repo / ".ap-build/scaffold.yml").write_text("runtime: r\nanswers: [\n")
    r = cli("scaffold", "--update", str(repo))
    assert r.exit_code == 2
    assert ".ap-build/scaffold.yml:" in r.stderr and "not valid YAML" in r.stderr


def test_update_with_a_new_base_image_moves_the_from_line(cli, tmp_path: Path) -> None:
    old = "ghcr.io/x/python-base:1.0.0@sha256:" + "a" * 64
    new = "ghcr.io/x/python-base:1.1.0@sha256:" + "b" * 64
    repo = tmp_path / "repo"
    assert cli("scaffold", "python", str(repo), "--base-image", old).exit_code == 0
    df = repo / "Dockerfile"
    df.write_text(df.read_text() + "LABEL team=data\n")
    r = cli("scaffold", "--update", str(repo), "--base-image", new)
    assert r.exit_code == 0, r.stderr
    lines = df.read_text().splitlines()
    assert lines[0] == f"FROM {new}" and lines[-1] == "LABEL team=data"
    assert yaml.safe_load((repo / ".ap-build/scaffold.yml").read_text())["answers"]["base_image"] == new


# --- properties of the merge plan --------------------------------------------------------------------
lines = st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), max_size=8).map(
    lambda xs: "".join(x + "\n" for x in xs)
)


@settings(max_examples=60, deadline=None)
@given(base=lines, ours=lines, theirs=lines)
def test_one_sided_changes_are_taken_whole(base: str, ours: str, theirs: str) -> None:
    # Only the template changed: the result is the template's new file.
    (a,) = plan_update({"f": base}, {"f": base}, {"f": theirs}, merge3)
    if base == theirs:
        assert a.action == "unchanged"
    else:
        assert (a.action, a.content) == ("update", theirs)
    # Only the user changed: the user's file stays exactly as it is.
    (b,) = plan_update({"f": base}, {"f": ours}, {"f": base}, merge3)
    assert not b.writes
    # Both made the same change: nothing to do.
    (c,) = plan_update({"f": base}, {"f": theirs}, {"f": theirs}, merge3)
    assert c.action == "unchanged"
