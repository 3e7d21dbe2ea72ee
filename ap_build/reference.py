"""Image references, `[domain[:port]/]path[:tag][@digest]`: the distribution project's grammar (`reference.go`).

Pure and light (no engine SDK): the image pipeline, the engine layer and scaffold all check user-given
references here before anything reaches an engine or a registry.
"""

from __future__ import annotations

import re

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
SHA256 = re.compile(r"sha256:[0-9a-f]{64}")  # the digest a pinned FROM line carries
_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    rf"(?::{TAG.pattern})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)


def is_reference(ref: str) -> bool:
    """True if `ref` is a well-formed image reference (nothing else: no whitespace, no newline)."""
    return len(ref) <= 255 + 140 and _REFERENCE.fullmatch(ref) is not None


def parse_ref(ref: str) -> tuple[str, str | None, str | None]:
    """Split `name[:tag][@digest]` into (name, tag, digest) without mistaking a registry port for a tag."""
    name, _, digest = ref.partition("@")
    tag = None
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    return name, tag, digest or None
