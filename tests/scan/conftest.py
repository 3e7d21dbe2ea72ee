"""Fixtures for the scan/sbom/test jobs' tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
