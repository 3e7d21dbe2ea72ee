"""ap-build's one cache folder (ap_build/resources.py), used by image builds and `workflow run`."""

from __future__ import annotations

from pathlib import Path

import pytest

from ap_build import resources
from ap_build.workflow.run import localdag


def test_one_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert resources.cache_dir() == tmp_path / "ap-build"
    assert localdag.cache_dir("2.10.3") == tmp_path / "ap-build" / "airflow-2.10.3"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resources.cache_dir() == tmp_path / "home" / ".cache" / "ap-build"


def test_cache_entries_go_through_the_safe_writer_and_an_unusable_cache_is_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert resources.read_cache("releases/abc") is None
    resources.write_cache("releases/abc", "trixie\n")
    assert resources.read_cache("releases/abc") == "trixie\n"
    assert (tmp_path / "ap-build" / "releases" / "abc").stat().st_mode & 0o777 == 0o644
    resources.write_cache("../outside", "x")  # refused by fsio: never outside the cache folder
    assert not (tmp_path / "outside").exists()
    monkeypatch.setenv("XDG_CACHE_HOME", "/dev/null")
    resources.write_cache("releases/abc", "trixie\n")  # no error: the next run recomputes it
    assert resources.read_cache("releases/abc") is None


def test_provenance_cache_entries_use_the_same_helper(tmp_path: Path) -> None:
    from ap_build.images import provenance

    url = "https://awscli.amazonaws.com/awscli-exe-linux-x86_64-2.0.0.zip"
    assert provenance.zip_digest(tmp_path, url, "a" * 64) == "a" * 64
    assert provenance.zip_digest(tmp_path, url, "") == "a" * 64
    unusable = Path("/dev/null/cache")
    assert provenance.zip_digest(unusable, url, "b" * 64) == "b" * 64  # kept nowhere, no error
    assert provenance.zip_digest(unusable, url, "") == ""
    stmt = {"_type": "https://in-toto.io/Statement/v1"}
    assert provenance.write(stmt, "sha256:" + "c" * 64, unusable, None) is None
    report = tmp_path / "out" / "build-report.json"
    report.parent.mkdir()
    assert provenance.write(stmt, "sha256:" + "c" * 64, unusable, report) == provenance.beside(report)
