"""The masking of secret values in everything ap-build prints (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"


class Masker:
    """Replaces every secret value in text (longest first, so a value containing another goes whole)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        parts = {line for value in secrets for line in [value, *value.splitlines()] if line.strip()}
        ordered = sorted(parts, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text
