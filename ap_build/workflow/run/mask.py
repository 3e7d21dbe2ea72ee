"""The masking of secret values in everything ap-build prints (pure).

A secret reaches output not only as typed: an engine's or a library's error quotes it escaped (Python's
repr, JSON, Go's %q: `\\x00`, `\\u0000`, `\\n`), a URL carries it percent-encoded, a header base64. The
masker replaces each of these forms, of the whole value and of each of its lines.
"""

from __future__ import annotations

import base64
import html
import json
import re
import shlex
import urllib.parse
from collections.abc import Iterable

MASK = "***"
MIN_ENCODED = 6  # an unaligned base64 core shorter than this could match ordinary text
_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
               "\\": "\\\\", '"': '\\"'}


def go_quoted(value: str) -> str:
    """The inside of Go's strconv.Quote (what an engine written in Go prints with %q)."""
    out = []
    for ch in value:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif not ch.isprintable():
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


def base64_cores(data: bytes) -> set[str]:
    """The base64 text that encodes `data` wherever it sits in a longer encoded text: for each of the three
    alignments, the characters that depend on `data` alone."""
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode()
        core = encoded[-(-8 * offset // 6):(8 * (offset + len(data))) // 6]
        if len(core) >= MIN_ENCODED:
            cores |= {core, core.translate(str.maketrans("+/", "-_"))}
    return cores


def forms(value: str) -> set[str]:
    """`value` as typed and as each escape or encoding prints it."""
    raw = value.encode("utf-8", "surrogatepass")
    python = {repr(value)[1:-1], ascii(value)[1:-1]}
    found = {
        value,
        *python, *(p.replace("\\'", "'").replace('"', '\\"') for p in python), *(p.replace("'", "\\'") for p in python),
        json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
        go_quoted(value),
        value.encode("unicode_escape", "backslashreplace").decode("ascii"),
        urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value, safe=""),
        html.escape(value), shlex.quote(value),
    }
    if len(raw) >= MIN_ENCODED:  # encodings of a short value could match ordinary text
        padded = base64.b64encode(raw).decode()
        found |= {raw.hex(), raw.hex().upper(), padded, padded.rstrip("="),
                  base64.urlsafe_b64encode(raw).decode().rstrip("="), *base64_cores(raw)}
    return found


class Masker:
    """Replaces every secret value, each of its lines, and their escaped and encoded forms in text (longest
    first, so a value containing another goes whole)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        parts = {line for value in secrets for line in [value, *value.splitlines()] if line.strip()}
        self.forms = sorted({f for part in parts for f in forms(part) if f.strip()}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, self.forms))) if self.forms else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text
