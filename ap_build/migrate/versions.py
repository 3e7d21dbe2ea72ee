"""The language versions a migration moves between: the legacy FROM's, and the new base's (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TAG_VERSION = re.compile(r"^v?(\d+\.\d+(?:\.\d+)?)")
_NAME_VERSION = re.compile(r"(?:python|^r|[/-]r)[-_]?(\d\.\d+(?:\.\d+)?)", re.I)


@dataclass(frozen=True)
class Target:
    """The runtime the new base has: its language version and, for Python, uv's `--python-platform`."""

    runtime: str  # "python" | "r"
    version: str = ""  # "3.13", "4.6.0"; "" when not known
    platform: str = ""  # e.g. "x86_64-manylinux_2_40" (Python only)
    how: str = ""  # how it was learned ("inspected ...", "assumed ...") or why it is not known

    @property
    def label(self) -> str:
        name = "Python" if self.runtime == "python" else "R"
        return f"{name} {self.version}" if self.version else f"{name} (version not known)"


def image_name(from_value: str) -> str:
    """`${DE_ECR}/python:3.7-alpine AS x` -> `python:3.7-alpine` (the registry and digest left out)."""
    image = from_value.split()[0] if from_value.split() else ""
    image = image.split("@", 1)[0]
    first, sep, rest = image.partition("/")
    if sep and ("$" in first or "." in first or ":" in first or first == "localhost"):
        image = rest
    return image


def source_version(from_value: str) -> str:
    """The language version a legacy FROM names (`python:3.7-alpine` -> 3.7, `r-airflow:4.1.2-2` -> 4.1.2,
    `rocker/r-ver:4.0.3` -> 4.0.3, `python3.7-slim` -> 3.7); "" when the image does not say (`latest`)."""
    image = image_name(from_value)
    name, _, tag = image.rpartition(":") if ":" in image else (image, "", "")
    m = _TAG_VERSION.match(tag)
    if m:
        return m.group(1)
    m = _NAME_VERSION.search(name.rsplit("/", 1)[-1])
    return m.group(1) if m else ""


def version_line(runtime: str, from_value: str, target: Target, base_image: str) -> str:
    """`Python 3.7 (python:3.7-alpine) -> Python 3.13 (...)`: the move, as MIGRATION.md states it."""
    name = "Python" if runtime == "python" else "R"
    source = source_version(from_value)
    old = f"{name} {source}" if source else f"{name} (version not stated)"
    return (f"{old} (the legacy `FROM {image_name(from_value)}`) -> {target.label} "
            f"(the new base `{image_name(base_image)}`: {target.how})")


def platform_tag(machine: str, glibc: str) -> str:
    """uv's `--python-platform` for a glibc Linux: `x86_64`, `2.41` -> `x86_64-manylinux_2_40` (uv's newest)."""
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    m = re.match(r"2\.(\d+)", glibc)
    if arch not in ("x86_64", "aarch64") or not m:
        return "linux"
    return f"{arch}-manylinux_2_{min(int(m.group(1)), 40)}"
