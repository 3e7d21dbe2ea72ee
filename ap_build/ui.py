"""Shared Rich consoles: results go to stdout, progress and diagnostics to stderr."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Machine output on stdout: plain, stable, sorted JSON (no Rich markup)."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))
