"""Bounded reading of the files a scan is handed (ignore files, VEX documents, archive members, reports).

Each is a regular file read up to a size bound (so `/dev/zero`, a FIFO or a folder is one clean error, never
an endless read), decoded as UTF-8 with the failing byte named, and JSON is refused past a nesting depth
before Python's parser would recurse into it (a document 100,000 arrays deep is a clean error, not a
RecursionError). Errors are `InputError(what, why)`; callers turn them into their own `error:` lines.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import IO, Any

MAX_JSON_DEPTH = 512  # OpenVEX, CSAF and image manifests nest under 20 levels


class InputError(ValueError):
    """A file that is not a regular, bounded, UTF-8 (JSON) document: `why` says which."""


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them; InputError otherwise (OSError passes)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a device, pipe or socket"
            raise InputError(f"not a regular file ({kind})")
        if st.st_size > limit:
            raise InputError(f"{st.st_size:,} bytes, more than {limit:,}")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise InputError(f"more than {limit:,} bytes")
    return data


def read_member(fh: IO[bytes], limit: int) -> bytes:
    """At most `limit` bytes of an archive member; InputError past it."""
    data = fh.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"more than {limit:,} bytes")
    return data


def decode(data: bytes) -> str:
    """UTF-8 text; InputError naming the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start:,})") from None


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)


def json_depth(data: bytes) -> int:
    """How deep the arrays and objects of a JSON document nest (strings skipped; linear time)."""
    brackets = _STRINGS.sub(b"", data).translate(None, bytes(set(range(256)) - set(b"[]{}")))
    depth = deepest = 0
    for b in brackets:
        if b in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def load_json(data: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a UTF-8 JSON document nesting at most `max_depth` deep; InputError otherwise."""
    if (depth := json_depth(data)) > max_depth:
        raise InputError(f"JSON nested {depth:,} levels deep (at most {max_depth})")
    text = decode(data)
    try:
        return json.loads(text)
    except RecursionError:  # pragma: no cover - json_depth bounds it first
        raise InputError(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise InputError(f"not JSON ({exc})") from None
