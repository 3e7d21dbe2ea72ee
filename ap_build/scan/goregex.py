"""Grype's `package.name` matching, exactly: Go's regexp (RE2 syntax, linear time) through a real RE2 binding (pure).

anchore/grype `grype/match/ignore.go` (`ifPackageNameApplies`, `packageNameRegex`, `isLikelyARegex`):

- a name with none of `^ $ * + ? [ ] ( ) { } | \\` is compared literally (`libssl1.1` is not `libssl1x1`);
- otherwise it is compiled as `"^" + name + "$"` (unless it starts with `$` and ends with `^`) and searched.
  The anchors are glued on as text, so `a|b` reads `^a|b$`: any name starting with `a`, or ending with `b`;
- a pattern Go's `regexp.Compile` refuses ignores nothing (ap-build reports it at its `file:line`).

Matching runs on Google's RE2 (`google-re2`), the engine Go's regexp reimplements: no backtracking, so
`(a+)+b` is linear. Where C++ RE2 accepts what Go refuses, Go wins: repeat counts over 1,000 (C++ RE2 wraps
`a{4294967296}` round to a small count), `\\C`, and expressions nested more than MAX_NESTING deep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# Grype's isRegexPattern (its `\\[dDwWsSnrtfv]` alternative is covered by the backslash in the set).
_REGEX_CHARS = re.compile(r"[\^$*+?\[\](){}|\\]")
MAX_PATTERN = 4096  # characters in one name pattern (a package name is at most a few hundred)
MAX_REPEAT = 1000  # Go's regexp/syntax limit on {n,m}
MAX_NESTING = 1000  # Go's regexp/syntax refuses deeper expressions ("expression nests too deeply")
_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")


class PatternError(ValueError):
    """A pattern Go's regexp would refuse: the rule ignores nothing."""


def is_likely_regex(name: str) -> bool:
    """Grype's isLikelyARegex: any regex metacharacter except `.`."""
    return _REGEX_CHARS.search(name) is not None


def anchored(name: str) -> str:
    """Grype's packageNameRegex text: `^name$` unless the name starts with `$` and ends with `^`."""
    if name[:1] == "$" and name[-1:] == "^":
        return name
    return "^" + name + "$"


def _go_checks(pattern: str) -> None:
    """What Go's parser refuses and C++ RE2 does not: large repeat counts, `\\C`, deep nesting."""
    depth = peak = 0
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if pattern[i + 1:i + 2] == "Q":  # \Q...\E is literal text
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
                continue
            if pattern[i + 1:i + 2] == "C" and not in_class:
                raise PatternError("invalid escape sequence `\\C` (Go's regexp does not support it)")
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            elif c == "[" and pattern[i + 1:i + 2] == ":":
                end = pattern.find(":]", i + 2)
                i = i + 1 if end < 0 else end + 2
                continue
            i += 1
            continue
        if c == "[":
            in_class = True
            i += 1
            if pattern[i:i + 1] == "^":
                i += 1
            if pattern[i:i + 1] == "]":  # a leading ] is a member
                i += 1
            continue
        if c == "(":
            depth += 1
            peak = max(peak, depth)
        elif c == ")":
            depth = max(depth - 1, 0)
        elif c == "{" and (m := _REPEAT.match(pattern, i)):
            if any(len(g) > 4 or int(g) > MAX_REPEAT for g in m.groups() if g):  # never int() of 5,000 digits
                raise PatternError(f"invalid repeat count `{m.group(0)[:40]}` (Go's limit is {MAX_REPEAT})")
            i = m.end()
            continue
        i += 1
    if peak >= MAX_NESTING:
        raise PatternError(f"expression nests too deeply ({peak:,} groups; Go's regexp refuses {MAX_NESTING:,})")


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False
    options.max_mem = 8 << 20  # RE2's default: a program past it is refused, never slow
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        message = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternError(f"{message} (Go's regexp refuses it)") from None


@dataclass(frozen=True)
class NameMatcher:
    """A compiled `package.name`: literal comparison or an RE2 search of the anchored pattern."""

    name: str
    literal: bool
    program: Any = None

    def __call__(self, package: str) -> bool:
        if self.literal:
            return package == self.name
        return self.program.search(package) is not None

    @property
    def alternation_warning(self) -> str:
        """Non-empty when Grype's anchoring makes a top-level `a|b` read `^a|b$` (surprising, kept as Grype)."""
        parts = _top_level_alternatives(self.name)
        if self.literal or len(parts) < 2 or self.name != anchored(self.name)[1:-1]:
            return ""
        first, last = parts[0], parts[-1]
        middle = ""
        if len(parts) > 2:
            middle = f"; the middle alternative(s) {'|'.join(parts[1:-1])} must match the whole name"
        return (f"Grype anchors it as ^{self.name}$: it matches any name starting with {first}, or ending with "
                f"{last}{middle}; write ^({self.name})$ for an exact choice")


def _top_level_alternatives(pattern: str) -> list[str]:
    parts, depth, start, i, in_class = [], 0, 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1:i + 2] == "]":
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    return [*parts, pattern[start:]]


def compile_name(name: str) -> NameMatcher:
    """The matcher Grype builds for `package.name`; PatternError where Go's regexp refuses the pattern."""
    if not is_likely_regex(name):
        return NameMatcher(name, literal=True)
    if len(name) > MAX_PATTERN:
        raise PatternError(f"pattern of {len(name):,} characters (at most {MAX_PATTERN:,})")
    pattern = anchored(name)
    _go_checks(pattern)
    return NameMatcher(name, literal=False, program=_compile(pattern))
