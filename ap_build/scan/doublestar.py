"""Doublestar globs as the scanners read them, bounded (pure).

- `match_v2`: bmatcuk/doublestar **v2.0.4** `Match`, which Grype uses for `package.location`
  (anchore/grype `grype/match/ignore.go`). Its quirks are kept: `[!a]` is a set of `!` and `a` (only `^`
  negates), `{1..5} ` is one literal alternative (no ranges), `**` crosses directories only as a whole path
  component outside braces, and a `*` takes the first length at which the rest of its component matches.
- `match_v4`: doublestar **v4** `Match`, which Trivy uses for `.trivyignore.yaml` `paths` (`[!a]` negates,
  `/**/` is zero or more directories, `a/**` also matches `a`), translated into an RE2 expression.

A pattern either library would reject with `ErrBadPattern` (an unclosed `[` or `{`, an empty class, a
trailing backslash), or one over the bounds (MAX_GLOB characters, MAX_WILDCARDS wildcards, MAX_ALTERNATIVES
alternatives), raises GlobError when checked: the caller reports it and the rule ignores nothing. Matching
never expands alternatives into copies of the pattern: v2 memoizes (pattern, name) pairs, v4 runs on RE2,
so the work is polynomial in the pattern and the path whatever they hold.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

MAX_GLOB = 1024  # characters in one glob
MAX_WILDCARDS = 64  # `*`, `?`, `[` and `{` in one glob
MAX_ALTERNATIVES = 1000  # alternatives over all `{...}` of one glob
MAX_PATH = 4096  # Linux's PATH_MAX: a longer "path" matches nothing
MAX_NAME = 255  # Linux's NAME_MAX: a path with a longer component matches no v2 glob


class GlobError(ValueError):
    """A glob the scanner would refuse, or one over the bounds."""


def _bounds(pattern: str) -> None:
    if len(pattern) > MAX_GLOB:
        raise GlobError(f"glob of {len(pattern):,} characters (at most {MAX_GLOB:,})")
    wild = sum(pattern.count(c) for c in "*?[{")
    if wild > MAX_WILDCARDS:
        raise GlobError(f"glob with {wild:,} wildcards and braces (at most {MAX_WILDCARDS})")
    if pattern.count(",") + pattern.count("{") > MAX_ALTERNATIVES:
        raise GlobError(f"glob with more than {MAX_ALTERNATIVES:,} alternatives")


def _find(s: str, ch: str) -> int:
    """Index of the first `ch` in `s` not right after a backslash (doublestar v2 looks one character back)."""
    i = s.find(ch)
    while i > 0 and s[i - 1] == "\\":
        i = s.find(ch, i + 1)
    return i


def _split(s: str) -> tuple[list[str], int]:
    """`s` starts after a `{`: its top-level alternatives and the index after the matching `}` (-1: unclosed)."""
    options, depth, escaped, start = [], 1, False, 0
    for i, c in enumerate(s):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return [*options, s[start:i]], i + 1
        elif c == "," and depth == 1:
            options.append(s[start:i])
            start = i + 1
    return [], -1


def _class_v2(content: str) -> list[tuple[str, str]]:
    """A v2 class body (between `[` and `]`) -> ranges; GlobError where v2 returns ErrBadPattern."""
    if not content:
        raise GlobError("empty character class []")
    i = 1 if content[0] == "^" else 0
    ranges = []
    while i < len(content):
        lo = content[i]
        if lo == "-":
            raise GlobError(f"misplaced `-` in [{content}]")
        i += 1
        if lo == "\\":
            if i >= len(content):
                raise GlobError(f"trailing backslash in [{content}]")
            lo, i = content[i], i + 1
        hi = lo
        if i < len(content) and content[i] == "-":
            if i + 1 >= len(content) or content[i + 1] == "-":
                raise GlobError(f"unfinished range in [{content}]")
            hi, i = content[i + 1], i + 2
            if hi == "\\":
                if i >= len(content):
                    raise GlobError(f"trailing backslash in [{content}]")
                hi, i = content[i], i + 1
        ranges.append((lo, hi))
    return ranges


def check_v2(pattern: str) -> None:
    """GlobError if doublestar v2 could answer ErrBadPattern for `pattern` (for some path), or it is too big."""
    _bounds(pattern)
    seen: set[str] = set()
    todo = [pattern]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        i = 0
        while i < len(p):
            c = p[i]
            if c == "\\":
                if i + 1 >= len(p) or p[i + 1] == "\ufffd":
                    raise GlobError("a backslash escapes nothing at the end of the glob")
                i += 2
            elif c == "[":
                close = _find(p[i + 1:], "]")
                if close < 0:
                    raise GlobError("unclosed `[` (write `\\[` for a literal bracket)")
                _class_v2(p[i + 1:i + 1 + close])
                i += close + 2
            elif c == "{":
                options, end = _split(p[i + 1:])
                if end < 0:
                    raise GlobError("unclosed `{` (write `\\{` for a literal brace)")
                todo.extend(o + p[i + 1 + end:] for o in options)
                break
            else:
                i += 1
        if len(seen) > 4 * MAX_ALTERNATIVES:
            raise GlobError(f"glob with more than {MAX_ALTERNATIVES:,} alternatives")


def _zero_length(p: str) -> bool:
    if p in ("", "*", "**"):
        return True
    if p[:1] == "{":
        options, end = _split(p[1:])
        return end >= 0 and _zero_length(p[1 + end:]) and any(_zero_length(o) for o in options)
    return False


class _V2:
    """One v2 match of a checked pattern against one path, memoized (no error can happen after check_v2)."""

    def __init__(self) -> None:
        self.memo: dict[str, dict[tuple[str, int], tuple[str, ...] | None]] = {}
        self.firsts: dict[str, dict[str, list[tuple[str, ...] | None]]] = {}

    def component(self, p: str, name: str, ni: int = 0) -> tuple[str, ...] | None:
        """Match `name[ni:]` (the rest of one path component) from the start of `p`: None, or the patterns
        left for the next components (empty: the pattern ended with this component)."""
        memo = self.memo.setdefault(name, {})
        key = (p, ni)
        if key not in memo:
            memo[key] = self._component(p, name, ni)
        return memo[key]

    def _first(self, p: str, name: str, ni: int) -> tuple[str, ...] | None:
        """A `*`: the result at the first position from `ni` where `p` matches the rest (O(n) per pattern)."""
        table = self.firsts.setdefault(name, {})
        if p not in table:
            firsts: list[tuple[str, ...] | None] = [None] * (len(name) + 1)
            for k in range(len(name) - 1, -1, -1):
                found = self.component(p, name, k)
                firsts[k] = found if found is not None else firsts[k + 1]
            table[p] = firsts
        return table[p][ni]

    def _component(self, p: str, name: str, ni: int) -> tuple[str, ...] | None:
        pi = 0
        while pi < len(p) and ni < len(name):
            c = p[pi]
            if c == "\\":
                if p[pi + 1] != name[ni]:
                    return None
                pi, ni = pi + 2, ni + 1
            elif c == "*":
                pi += 1
                if pi >= len(p):
                    return ()
                if p[pi] == "/":
                    return (p[pi + 1:],)
                return self._first(p[pi:], name, ni)  # the first length that lets the rest match wins
            elif c == "[":
                close = pi + 1 + _find(p[pi + 1:], "]")
                body = p[pi + 1:close]
                hit = any(lo <= name[ni] <= hi for lo, hi in _class_v2(body))
                if hit == (body[0] == "^"):
                    return None
                pi, ni = close + 1, ni + 1
            elif c == "{":
                options, end = _split(p[pi + 1:])
                rest = p[pi + 1 + end:]
                results = [r for o in options if (r := self.component(o + rest, name, ni)) is not None]
                if not results:
                    return None
                return tuple(dict.fromkeys(x for r in results for x in r))
            elif c == "?" or c == name[ni]:
                pi, ni = pi + 1, ni + 1
            else:
                return None  # includes a `/` in the pattern while the component goes on
        if ni < len(name):
            return None
        if pi >= len(p):
            return ()
        rest = p[pi:]
        slash = _find(rest, "/")
        if _zero_length(rest if slash < 0 else rest[:slash]):
            return () if slash < 0 else (rest[slash + 1:],)
        return None

    def match(self, pattern: str, name: str) -> bool:
        """Any branch of doublestar v2's `doMatching` succeeds (an explicit stack: paths can be deep)."""
        todo, seen = [(pattern, 0)], set()
        while todo:
            state = todo.pop()
            if state in seen:
                continue
            seen.add(state)
            p, at = state
            rest = name[at:]
            if not p:
                if not rest:
                    return True
                continue
            if not rest:
                if _zero_length(p):
                    return True
                continue
            slash = _find(p, "/")
            if (p if slash < 0 else p[:slash]) == "**":
                if slash < 0:
                    return True
                k = at
                while True:
                    todo.append((p[slash + 1:], k))
                    nxt = _find(name[k:], "/")
                    if nxt < 0:
                        break
                    k += nxt + 1
                continue
            cut = _find(rest, "/")
            found = self.component(p, rest if cut < 0 else rest[:cut])
            if found is None:
                continue
            if cut < 0:
                if not found:
                    return True
                continue
            todo.extend((alt, at + cut + 1) for alt in found)
        return False


def match_v2(pattern: str, name: str) -> bool:
    """doublestar v2.0.4 `Match(pattern, name)` for a pattern that passed check_v2."""
    if len(name) > MAX_PATH or any(len(part) > MAX_NAME for part in name.split("/")):
        return False
    return _V2().match(pattern, name)


# --- doublestar v4 (Trivy) -------------------------------------------------------------------------------

def check_v4(pattern: str) -> None:
    """GlobError where doublestar v4's ValidatePattern says false (as Trivy does on load), or over the bounds."""
    _bounds(pattern)
    _v4_program(pattern)


def _hex(c: str) -> str:
    return f"\\x{{{ord(c):x}}}"


def _v4_regex(p: str) -> str:
    out: list[str] = []
    depth, i, n = 0, 0, len(p)
    while i < n:
        c = p[i]
        at_start = i == 0 or p[i - 1] == "/"
        if c == "*" and p[i:i + 2] == "**" and at_start and depth == 0 and (i + 2 == n or p[i + 2] == "/"):
            if i + 2 >= n or p[i + 2:] == "/":  # `**` last: anything, including the folder itself
                if out and out[-1] == "/":
                    out[-1] = "(?:/.*)?"
                else:
                    out.append(".*")
                break
            out.append("(?:.*/)?")  # `**/`: zero or more folders
            i += 3
            continue
        if c == "\\":
            if i + 1 >= n:
                raise GlobError("a backslash escapes nothing at the end of the glob")
            out.append(_hex(p[i + 1]))
            i += 2
            continue
        if c == "*":
            while p[i + 1:i + 2] == "*":
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            i = _v4_class(p, i + 1, out)
            continue
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        elif c == "}":
            raise GlobError("`}` without a `{` (write `\\}` for a literal brace)")
        elif c == "," and depth:
            out.append("|")
        elif c == "/":
            out.append("/")
        else:
            out.append(_hex(c))
        i += 1
    if depth:
        raise GlobError("unclosed `{` (write `\\{` for a literal brace)")
    return "".join(out)


def _v4_class(p: str, i: int, out: list[str]) -> int:
    """Translate a v4 class starting after its `[`; returns the index after its `]`."""
    negate = p[i:i + 1] in ("^", "!")
    i += negate
    if i >= len(p) or p[i] == "]":
        raise GlobError("empty or unclosed character class")
    members: list[str] = []
    while i < len(p) and p[i] != "]":
        if p[i] == "\\":
            if i + 1 >= len(p):
                break
            members.append(_hex(p[i + 1]))
            i += 2
        elif p[i] == "-" and members and i + 1 < len(p) and p[i + 1] != "]":
            members.append("-")
            i += 1
        else:
            members.append(_hex(p[i]))
            i += 1
    if i >= len(p):
        raise GlobError("unclosed `[` (write `\\[` for a literal bracket)")
    out.append(("[^/" if negate else "[") + "".join(members) + "]")  # a negated class never matches `/`
    return i + 1


@lru_cache(maxsize=1024)
def _v4_program(pattern: str) -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile("(?s)^(?:" + _v4_regex(pattern) + ")$", options)
    except re2.error as exc:
        raise GlobError(f"unusable glob ({exc.args[0]!r})") from None


def match_v4(pattern: str, name: str) -> bool:
    """doublestar v4 `Match(pattern, name)` for a pattern that passed check_v4."""
    if len(name) > MAX_PATH:
        return False
    return _v4_program(pattern).search(name) is not None
