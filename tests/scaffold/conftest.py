"""Fixtures for the scaffold tests: scaffolded repositories (the in-process `cli` fixture is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ap_build.cli import main


@pytest.fixture(scope="session")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A repository per runtime made by `ap-build scaffold` (session-scoped; do not modify it)."""
    made: dict[str, Path] = {}

    def get(runtime: str) -> Path:
        if runtime not in made:
            dest = tmp_path_factory.mktemp("scaffolded") / f"my_{runtime}_repo"
            try:
                main(["scaffold", runtime, str(dest), "--org", "moj-analytical-services"])
            except SystemExit as exc:
                assert not exc.code, f"ap-build scaffold {runtime} failed with {exc.code}"
            made[runtime] = dest
        return made[runtime]

    return get
