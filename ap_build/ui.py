"""Shared Rich consoles: results go to stdout, progress and diagnostics to stderr."""

from __future__ import annotations

import contextlib
import json
from contextlib import AbstractContextManager
from typing import Any

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # one line per message: CI logs wrap themselves


def status(text: str) -> AbstractContextManager[Any]:
    """A spinner on stderr while a slow step runs, on a terminal only.

    In CI (no terminal) nobody watches it, and starting Rich's live display costs ~10 ms, which the
    scan gate would pay before Trivy even starts.
    """
    return err.status(text) if err.is_terminal else contextlib.nullcontext()


def print_json(data: Any) -> None:
    """Machine output on stdout: plain, stable, sorted JSON (no Rich markup)."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))
