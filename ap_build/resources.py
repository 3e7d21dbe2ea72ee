"""Locate ap-build's folders: the data files that ship with it (image recipes, repository templates) and
its cache."""

from __future__ import annotations

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """`images/` or `templates/`: inside the installed package (`_data/`) or at the source root."""
    for candidate in (_PKG / "_data" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"ap-build data folder {name!r} is missing from this installation")


def base_trivyignore() -> Path:
    """The ignore list the runtime base images carry: this repository's root `.trivyignore`."""
    packaged = _PKG / "_data" / "trivyignore"
    return packaged if packaged.is_file() else _PKG.parent / ".trivyignore"


def cache_dir() -> Path:
    """ap-build's cache folder, `$XDG_CACHE_HOME/ap-build` (else `~/.cache/ap-build`): component versions and
    base releases by image ID, provenance, `workflow run`'s Airflow homes and run servers."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ap-build"


def read_cache(rel: str, cache: Path | None = None) -> str | None:
    """The text kept under `rel` in ap-build's cache (or the cache folder `cache`), or None (missing,
    unreadable: a cache may be lost)."""
    try:
        return ((cache or cache_dir()) / rel).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None


def write_cache(rel: str, text: str, cache: Path | None = None) -> bool:
    """Keep `text` under `rel` in ap-build's cache (or `cache`), through the safe writer; whether it was
    kept. A cache folder that cannot be written (`XDG_CACHE_HOME=/dev/null`, a read-only home) only means
    the next run recomputes it."""
    from ap_build import fsio
    from ap_build.errors import ApBuildError

    try:
        fsio.write_text(cache or cache_dir(), rel, text)
    except (ApBuildError, OSError):
        return False
    return True
