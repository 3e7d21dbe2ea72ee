"""Three-way text merge with `git merge-file` (the same merge `git merge` does, conflict markers included)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ap_build.errors import ToolError


def merge3(
    current: str, base: str, new: str, *, labels: tuple[str, str, str] = ("yours", "template base", "template new")
) -> tuple[str, int]:
    """Merge the change base -> new into `current`. Returns (merged text, number of conflicts)."""
    git = shutil.which("git")
    if not git:
        raise ToolError("git is needed for the three-way merge of `scaffold --update`", hint="install git")
    with tempfile.TemporaryDirectory(prefix="ap-build-merge-") as tmp:
        paths = []
        for name, text in (("current", current), ("base", base), ("new", new)):
            p = Path(tmp) / name
            p.write_text(text)
            paths.append(str(p))
        cmd = [git, "merge-file", "-p", "-L", labels[0], "-L", labels[1], "-L", labels[2], *paths]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode < 0 or proc.returncode > 127:
        raise ToolError(f"git merge-file failed: {proc.stderr.strip()[:300]}")
    return proc.stdout, proc.returncode
