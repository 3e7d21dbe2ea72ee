"""The side effects: read a repository, check git, write the plan atomically."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from ap_build import fsio
from ap_build.errors import UsageError
from ap_build.migrate.plan import DOCKERFILES, TRANSFORMED, Plan, Snapshot
from ap_build.migrate.workflows import LEGACY_WORKFLOW

MAX_READ = 2_000_000  # bytes: larger files are listed but not read (data, not code)
READ_FOR_PLAN = frozenset((*DOCKERFILES, LEGACY_WORKFLOW))  # planning needs their text
SKIP_DIRS = {".git", "node_modules", "renv", ".venv", "venv", "__pycache__", ".Rproj.user"}


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)


def in_git(root: Path) -> bool:
    try:
        return _git(root, "rev-parse", "--is-inside-work-tree").stdout.strip() == "true"
    except FileNotFoundError:
        return False


def dirty_paths(root: Path) -> list[str]:
    """Uncommitted changes (untracked files included) under `root`, as `git status --porcelain` lists them."""
    res = _git(root, "status", "--porcelain", "--untracked-files=all", "--", ".")
    if res.returncode != 0:
        raise UsageError(f"{root}: git status failed: {res.stderr.strip().splitlines()[-1:]}")
    return [line[3:] for line in res.stdout.splitlines() if line.strip()]


def _remote(root: Path) -> tuple[str, str]:
    """(org, name) from the git remote `origin` (github.com/org/name[.git]), else ("", "")."""
    if not in_git(root):
        return "", ""
    url = _git(root, "remote", "get-url", "origin").stdout.strip()
    m = re.search(r"github\.com[:/]+([^/]+)/([^/]+?)(?:\.git)?/?$", url)
    return (m.group(1), m.group(2)) if m else ("", "")


def read_snapshot(root: Path) -> Snapshot:
    """List the repository (minus .git and dependency folders) and read its files up to MAX_READ bytes.

    Symlinks are not followed by the walk; the files migrate may write are then looked up through the
    safe reader, so an in-root link is read (and later written) as its target, and one that leaves the
    repository is listed (kept as it is) but never read or written.
    """
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root}: no such directory", hint="ap-build migrate PATH/TO/REPOSITORY")
    listing: set[str] = set()
    files: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for fn in filenames:
            p = Path(dirpath) / fn
            rel = p.relative_to(root).as_posix()
            if p.is_symlink() or not p.is_file():
                continue
            listing.add(rel)
            try:
                if p.stat().st_size <= MAX_READ:
                    files[rel] = p.read_bytes()
            except OSError as exc:
                raise UsageError(f"{p}: cannot read ({exc.strerror or exc})",
                                 hint="make it readable (or move it out of the repository) and re-run") from exc
    for rel in sorted(TRANSFORMED - listing):
        try:
            data = fsio.read_bytes(root, rel)
        except fsio.UnsafePathError:
            if rel in READ_FOR_PLAN:
                raise
            listing.add(rel)  # a link out of the repository: left exactly as it is
            continue
        if data is not None:
            listing.add(rel)
            files[rel] = data
    org, name = _remote(root)
    return Snapshot(str(root), frozenset(listing), files, name or root.resolve().name, org)


def check_clean(root: Path, force: bool) -> list[str]:
    """Refuse (UsageError) a git working tree with uncommitted changes unless `force`; return the dirty list."""
    if not in_git(root):
        return []
    dirty = dirty_paths(root)
    if dirty and not force:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise UsageError(
            f"{root}: the git working tree has uncommitted changes ({shown})",
            hint="commit or stash them first, so the migration can be reviewed and undone with git; or --force",
        )
    return dirty


def apply_plan(plan: Plan) -> None:
    """Write every add/change, then delete, through the safe writer: all staged before the first rename,
    nothing outside the repository or through a symlink that leaves it (ap_build.fsio)."""
    with fsio.Batch(plan.root) as batch:
        for op in plan.writes:
            assert op.new is not None
            batch.write_bytes(op.path, op.new)
        for op in plan.deletes:
            batch.remove(op.path)
