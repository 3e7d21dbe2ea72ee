"""Ignore entries and problems: what every ignore format parses into (pure, imported by all of them).

`IgnoreEntry` remembers its `file:line`; a `Problem` is a malformed entry, which ignores nothing until fixed.
Every list is bounded (MAX_IGNORE_BYTES, MAX_IGNORE_LINES) before it is parsed.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from ap_build.errors import UsageError

MAX_IGNORE_BYTES = 1024 * 1024
MAX_IGNORE_LINES = 50_000


class IgnoreFileTooLarge(UsageError):
    """An ignore file over the size bounds (exit 2): nobody reviews a list that long."""


@dataclass(frozen=True)
class IgnoreEntry:
    """One ignore rule and its origin (`source` is a file path or `image:<path in image>`)."""

    id: str
    source: str
    line: int
    expires: dt.date | None = None
    paths: tuple[str, ...] = ()
    purls: tuple[str, ...] = ()
    statement: str = ""
    section: str = "vulnerabilities"
    rule: Any = None  # a Grype ignore rule (ap_build.scan.grype.GrypeRule): matched with Grype's semantics

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def format(self) -> str:
        if self.rule is not None:
            return "grype"
        return "trivyignore-yaml" if self.source.endswith((".yaml", ".yml")) else "trivyignore"


@dataclass(frozen=True)
class Problem:
    """A malformed ignore entry: it ignores nothing until fixed."""

    source: str
    line: int
    message: str

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def parse_date(text: str) -> dt.date | None:
    """`YYYY-MM-DD` -> date; None for anything else, including impossible dates like 2026-13-01."""
    try:
        return dt.date.fromisoformat(text) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else None
    except ValueError:
        return None


def check_bounds(text: str, source: str, size: int | None = None) -> None:
    """IgnoreFileTooLarge if `text` is over MAX_IGNORE_BYTES or MAX_IGNORE_LINES (checked before parsing)."""
    if size is None:
        size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > MAX_IGNORE_BYTES else len(text)
    lines = text.count("\n") + 1
    if size > MAX_IGNORE_BYTES or lines > MAX_IGNORE_LINES:
        raise IgnoreFileTooLarge(
            f"{source}: ignore list too large ({size:,} bytes{f', {lines:,} lines' if text else ''}; at most "
            f"{MAX_IGNORE_BYTES:,} bytes and {MAX_IGNORE_LINES:,} lines)",
            hint="an ignore list is reviewed by people: keep it to the exceptions you have decided on",
        )
