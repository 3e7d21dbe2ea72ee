"""Fixtures for the action tests: ap-build's action as the runner downloads it, and a runner temp dir."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def action_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files as the runner fetches `uses: OWNER/ap-build@SHA` (the files git has, symlinks
    kept), in a folder of their own: nothing the tests' own .venv holds is visible to the action."""
    dest = tmp_path_factory.mktemp("actions") / "ap-build"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the work tree
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), target)
        else:
            shutil.copy2(src, target)
    return dest


@pytest.fixture(scope="session")
def runner_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RUNNER_TEMP for the session: like the steps of one job, the action's runs share its virtualenv."""
    return tmp_path_factory.mktemp("runner-temp")
