"""Shared Rich consoles: results go to stdout, progress and diagnostics to stderr.

User text is never markup: both consoles have Rich markup OFF, so a `[/]` or `[bold]` in a path, an
ignore line, a label or an option value prints as typed. Colour comes from `styled()` pieces (Rich
`Text`), never from markup tags inside an f-string.
"""

from __future__ import annotations

import contextlib
import json
import re
from contextlib import AbstractContextManager
from typing import Any

from rich.console import Console
from rich.text import Text

out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)  # one line per message

# C0/C1 controls (newline and ESC included) and the invisible bidi/format characters that can make a
# terminal line read differently from what it holds
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")


def printable(text: object) -> str:
    """`text` on one line with control characters (newline, ESC, NUL...) shown as escapes, not obeyed, and
    undecodable bytes of a file name (surrogates) shown as escapes, not written raw."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


def styled(*parts: str | tuple[str, str]) -> Text:
    """One line from plain strings and (text, style) pieces; no piece is ever parsed as markup."""
    return Text.assemble(*parts)


def error(message: object, hint: object | None = None, *, label: str = "error:") -> None:
    """The one-line `error: ...` (+ `hint: ...`) every failure prints on stderr."""
    err.print(styled((label, "bold red"), " ", printable(message)))
    if hint:
        err.print(styled(("hint:", "dim"), " ", printable(hint)))


def note(message: object, label: str = "note:", style: str = "yellow") -> None:
    """A labelled one-line diagnostic on stderr (`note:`, `warning:`...)."""
    err.print(styled((label, style), " ", printable(message)))


def info(message: object, style: str = "") -> None:
    """A plain one-line diagnostic on stderr."""
    err.print(Text(printable(message), style=style))


def status(text: str) -> AbstractContextManager[Any]:
    """A spinner on stderr while a slow step runs, on a terminal only.

    In CI (no terminal) nobody watches it, and starting Rich's live display costs ~10 ms, which the
    scan gate would pay before Trivy even starts.
    """
    return err.status(Text(printable(text))) if err.is_terminal else contextlib.nullcontext()


def print_json(data: Any) -> None:
    """Machine output on stdout: plain, stable, sorted JSON (no Rich markup)."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))
