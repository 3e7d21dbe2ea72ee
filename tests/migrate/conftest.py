"""Fixtures for the migrate tests: fixture repositories copied into git working trees, and the real CLI."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
LEGACY = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir() and p.name != "unknown")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """Copy fixture `name` into a fresh git working tree (committed, clean); optional origin remote."""

    def make(name: str, *, remote: str | None = None, use_git: bool = True) -> Path:
        repo = tmp_path / name
        shutil.copytree(FIXTURES / name, repo)
        if use_git:
            git(repo, "init", "-q", "-b", "main")
            git(repo, "config", "core.autocrlf", "false")
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", "legacy")
            if remote:
                git(repo, "remote", "add", "origin", remote)
        return repo

    return make


def tree(repo: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file outside .git (byte-exact)."""
    return {
        p.relative_to(repo).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }
