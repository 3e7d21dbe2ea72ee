"""The safe writer: atomic, mode-keeping, confined to its root, never through a symlink out of it."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hostile import conftest as hostile_fixtures

from ap_build import fsio
from ap_build.errors import ApBuildError

outside = hostile_fixtures.outside  # a folder beside the root with a file that must never change


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


def test_writes_new_file_with_parents_and_0644_whatever_the_umask(root: Path) -> None:
    old = os.umask(0o077)
    try:
        written = fsio.write_text(root, "a/b/c.txt", "hello\n")
    finally:
        os.umask(old)
    assert written == root / "a/b/c.txt"
    assert written.read_text() == "hello\n"
    assert _mode(written) == 0o644


def test_caller_mode_for_new_files_existing_mode_kept(root: Path) -> None:
    fsio.write_text(root, "run.sh", "#!/bin/sh\n", mode=0o755)
    assert _mode(root / "run.sh") == 0o755
    (root / "keep.txt").write_text("old")
    os.chmod(root / "keep.txt", 0o640)
    fsio.write_text(root, "keep.txt", "new", mode=0o755)
    assert (root / "keep.txt").read_text() == "new"
    assert _mode(root / "keep.txt") == 0o640


def test_absolute_path_inside_root_is_accepted(root: Path) -> None:
    fsio.write_text(root, root / "x.txt", "x")
    assert (root / "x.txt").read_text() == "x"


@pytest.mark.parametrize("rel", ["../escape.txt", "a/../../escape.txt", "/etc/ap-build-never", "", "."])
def test_lexical_escape_refused(root: Path, rel: str) -> None:
    with pytest.raises(fsio.UnsafePathError) as info:
        fsio.write_text(root, rel, "x")
    assert info.value.exit_code == 2
    assert not (root.parent / "escape.txt").exists()


def test_nul_refused(root: Path) -> None:
    with pytest.raises(fsio.UnsafePathError, match="NUL"):
        fsio.write_text(root, "a\0b", "x")


def test_symlink_to_outside_file_refused_and_target_untouched(root: Path, outside: Path) -> None:
    (root / "link.txt").symlink_to(outside / "victim.txt")
    with pytest.raises(fsio.UnsafePathError, match=r"link\.txt"):
        fsio.write_text(root, "link.txt", "pwned")
    assert (outside / "victim.txt").read_text() == "precious\n"
    assert (root / "link.txt").is_symlink()


def test_dangling_symlink_out_of_root_refused(root: Path, outside: Path) -> None:
    (root / "dangling").symlink_to(outside / "new-file")
    with pytest.raises(fsio.UnsafePathError):
        fsio.write_text(root, "dangling", "x")
    assert not (outside / "new-file").exists()


def test_dangling_symlink_inside_root_creates_its_target_and_stays_a_link(root: Path) -> None:
    (root / "dangling").symlink_to("sub/real.txt")
    fsio.write_text(root, "dangling", "x")
    assert (root / "dangling").is_symlink()
    assert (root / "sub/real.txt").read_text() == "x"


def test_parent_dir_symlink_out_of_root_refused(root: Path, outside: Path) -> None:
    (root / ".github").symlink_to(outside)
    with pytest.raises(fsio.UnsafePathError, match=r"\.github"):
        fsio.write_text(root, ".github/workflows/ci.yml", "x")
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    with pytest.raises(fsio.UnsafePathError):
        fsio.remove(root, ".github/victim.txt")
    assert (outside / "victim.txt").exists()


def test_in_root_symlinks_kept_as_links(root: Path) -> None:
    (root / "real").mkdir()
    (root / "real/f.txt").write_text("old")
    os.chmod(root / "real/f.txt", 0o600)
    (root / "dirlink").symlink_to("real")
    (root / "filelink").symlink_to("real/f.txt")
    fsio.write_text(root, "dirlink/f.txt", "via dir")
    assert (root / "real/f.txt").read_text() == "via dir"
    fsio.write_text(root, "filelink", "via file")
    assert (root / "filelink").is_symlink() and (root / "dirlink").is_symlink()
    assert (root / "real/f.txt").read_text() == "via file"
    assert _mode(root / "real/f.txt") == 0o600


def test_symlink_loop_refused(root: Path) -> None:
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    with pytest.raises(ApBuildError):
        fsio.write_text(root, "a", "x")


def test_file_where_folder_needed_is_a_clean_error(root: Path) -> None:
    (root / "plain").write_text("x")
    with pytest.raises(ApBuildError, match="plain"):
        fsio.write_text(root, "plain/child.txt", "x")
    with pytest.raises(ApBuildError, match="folder"):
        fsio.write_output(root / "plain" / "report.json", "x")


def test_folder_as_target_refused(root: Path) -> None:
    (root / "d").mkdir()
    with pytest.raises(fsio.UnsafePathError, match="folder"):
        fsio.write_text(root, "d", "x")


UNWRITABLE = """
import sys
from ap_build import fsio
from ap_build.errors import ApBuildError
try:
    fsio.write_text(sys.argv[1], "ro/x", "x")
except ApBuildError as exc:
    print(exc.message)
"""


def test_unwritable_folder_is_a_clean_error() -> None:
    """As root (CI) the write runs as `nobody` (setpriv): root ignores folder permissions."""
    work = Path(tempfile.mkdtemp(prefix="ap-build-ro-"))
    try:
        work.chmod(0o755)
        (work / "ro").mkdir(mode=0o555)
        argv = [sys.executable, "-c", UNWRITABLE, str(work)]
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                pytest.skip("root, and no setpriv to drop to an unprivileged user")
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        assert "ro/x: cannot write (Permission denied)" in out
        assert list((work / "ro").iterdir()) == []
    finally:
        shutil.rmtree(work)


def test_remove_link_not_target(root: Path, outside: Path) -> None:
    (root / "link").symlink_to(outside / "victim.txt")
    assert fsio.remove(root, "link") is True
    assert not (root / "link").is_symlink()
    assert (outside / "victim.txt").exists()
    assert fsio.remove(root, "link") is False
    assert fsio.remove(root, "no/such/dir/file") is False
    with pytest.raises(fsio.UnsafePathError):
        fsio.remove(root, "../outside/victim.txt")


def test_batch_is_all_or_nothing(root: Path, outside: Path) -> None:
    (root / "a.txt").write_text("old a")
    (root / "evil").symlink_to(outside / "victim.txt")
    with pytest.raises(fsio.UnsafePathError), fsio.Batch(root) as batch:
        batch.write_text("a.txt", "new a")
        batch.write_text("evil", "new evil")
    assert (root / "a.txt").read_text() == "old a"
    assert [p.name for p in root.iterdir() if "ap-build-tmp" in p.name] == []


def test_check_relpath() -> None:
    assert fsio.check_relpath("a/./b.txt", "f") == "a/b.txt"
    for bad in ["../x", "/etc/passwd", "a/../../x", "", ".", "a\nb", "a\\..\\b", 3, None]:
        with pytest.raises(fsio.UnsafePathError, match="f:"):
            fsio.check_relpath(bad, "f")


CRASH = """
import os, sys
from ap_build import fsio
real_replace = os.replace
def boom(*a, **k):
    os._exit(9)  # the process dies between staging and the rename
os.replace = boom
fsio.write_text(sys.argv[1], "f.txt", "new content " * 1000)
"""


def test_crash_before_rename_leaves_old_file(root: Path) -> None:
    (root / "f.txt").write_text("old content")
    res = subprocess.run([sys.executable, "-c", CRASH, str(root)], check=False)
    assert res.returncode == 9
    assert (root / "f.txt").read_text() == "old content"


def test_no_temp_left_after_write(root: Path) -> None:
    fsio.write_text(root, "f.txt", "x")
    fsio.write_text(root, "f.txt", "y")
    assert [p.name for p in root.iterdir()] == ["f.txt"]


def test_read_bytes_follows_only_in_root_links(root: Path, outside: Path) -> None:
    (root / "a.txt").write_text("in")
    (root / "in-link").symlink_to("a.txt")
    (root / "out-link").symlink_to(outside / "victim.txt")
    assert fsio.read_bytes(root, "a.txt") == b"in"
    assert fsio.read_bytes(root, "in-link") == b"in"
    assert fsio.read_bytes(root, "missing/file") is None
    with pytest.raises(fsio.UnsafePathError):
        fsio.read_bytes(root, "out-link")


def test_output_in_the_working_directory_not_through_a_planted_link(root: Path, outside: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)
    (root / "out").symlink_to(outside)
    with pytest.raises(fsio.UnsafePathError, match="outside"):
        fsio.write_output("out/report.json", "x")
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert fsio.write_output("reports/r.json", "x") == root / "reports/r.json"
    assert fsio.write_output(outside / "explicit.json", "x") == outside / "explicit.json"  # the user's choice


def test_parallel_writers_into_new_folders(root: Path) -> None:
    """`workflow compile` writes from several processes: folders made by one are used by the others."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(4) as pool:
        written = list(pool.map(fsio.write_text, [root] * 32, [f"env/proj/wf{i}.py" for i in range(32)], ["x"] * 32))
    assert sorted(p.name for p in (root / "env/proj").iterdir()) == sorted(Path(p).name for p in written)


def test_longest_name_still_has_room_for_its_temp_file(root: Path) -> None:
    name = "é" * 127  # 254 bytes
    assert fsio.write_text(root, name, "x").read_text() == "x"
