"""Fixtures for the scaffold tests: the real CLI in-process, and scaffolded repositories."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ap_build.cli import main


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run the real `ap-build` entry point in-process (error mapping included) and capture its output."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


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
