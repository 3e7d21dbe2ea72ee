"""Trivy and container-structure-test run in a temporary directory: relative paths must be resolved first."""

from __future__ import annotations

from pathlib import Path

from ap_build.scan.trivy import TrivyOptions


def test_relative_cache_dir_is_made_absolute(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    opts = TrivyOptions(cache_dir=Path("cache"))
    assert opts.cache_dir == tmp_path / "cache"
    assert TrivyOptions().cache_dir is None
