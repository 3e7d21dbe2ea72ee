"""Fixtures for the scan/sbom/test jobs' tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """The user's repository checkout: the current directory during the scan."""
    d = tmp_path / "repo"
    d.mkdir()
    monkeypatch.chdir(d)
    return d

