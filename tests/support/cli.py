"""Run the installed `ap-build` as a user does (a subprocess) and check its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

AP_BUILD = str(Path(sys.executable).parent / "ap-build")


def cli(*args: str, env: dict[str, str] | None = None, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AP_BUILD, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
