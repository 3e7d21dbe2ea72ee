"""Dockerfile tokenizer with exact source spans (pure); the legacy rewrite is in rewrite.py.

Why not `dockerfile-parse` alone: it splits heredoc bodies into bogus instructions and keeps `\\r` in
comment values, and it cannot give back the exact bytes of each item. This tokenizer follows the
Dockerfile reference (parser directives, escape character, line continuations with interleaved comment
and blank lines, BuildKit heredocs `<<EOF`, `<<-EOF`, `<<"EOF"`), and every item keeps its raw text, so
`"".join(item.raw for item in items) == text` and untouched lines stay byte-identical. The tests check
that it agrees with `dockerfile-parse` on every heredoc-free Dockerfile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ap_build.errors import UsageError

_DIRECTIVE_RE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(\S*)\s*$")
_HEREDOC_RE = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_.-]*)\2")
HEREDOC_KEYWORDS = ("RUN", "COPY", "ADD")


@dataclass(frozen=True)
class Item:
    """One top-level item of a Dockerfile: an instruction, a comment line or a blank line."""

    kind: str  # "instruction" | "comment" | "blank"
    raw: str  # exact source text, line endings included
    line: int  # 1-based first line
    end_line: int
    keyword: str = ""  # upper-cased instruction keyword
    value: str = ""  # the instruction's arguments, continuations joined (heredoc bodies excluded)
    heredocs: tuple[str, ...] = ()

    @property
    def is_instruction(self) -> bool:
        return self.kind == "instruction"


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: its items, escape character, and newline convention."""

    items: tuple[Item, ...]
    escape: str = "\\"
    newline: str = "\n"
    directives: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        return "".join(i.raw for i in self.items)

    def instructions(self) -> list[Item]:
        return [i for i in self.items if i.is_instruction]

    def stage_starts(self) -> list[int]:
        """Indexes (into `items`) of every FROM."""
        return [n for n, i in enumerate(self.items) if i.keyword == "FROM"]


def _body(line: str) -> str:
    return line.rstrip("\r\n")


def parse(text: str, path: str = "Dockerfile") -> Dockerfile:
    """Tokenize `text`. Raises UsageError (file and line) for an unterminated continuation or heredoc."""
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if "\r\n" in text else "\n"
    escape = "\\"
    directives: dict[str, str] = {}
    items: list[Item] = []
    i = 0
    in_directives = True
    while i < len(lines):
        start = i
        body = _body(lines[i])
        stripped = body.strip()
        if not stripped:
            in_directives = False
            items.append(Item("blank", lines[i], i + 1, i + 1))
            i += 1
            continue
        if stripped.startswith("#"):
            m = _DIRECTIVE_RE.match(stripped)
            if in_directives and m and m.group(1).lower() not in directives:
                directives[m.group(1).lower()] = m.group(2)
                if m.group(1).lower() == "escape" and m.group(2) in ("`", "\\"):
                    escape = m.group(2)
            else:
                in_directives = False
            items.append(Item("comment", lines[i], i + 1, i + 1))
            i += 1
            continue
        in_directives = False
        logical: list[str] = []
        while True:
            body = _body(lines[i])
            if i > start and (not body.strip() or body.lstrip().startswith("#")):
                i += 1  # comment and empty lines inside a continuation are skipped by the builder
                if i >= len(lines):
                    break
                continue
            if body.rstrip().endswith(escape):
                logical.append(body.rstrip()[: -len(escape)])
                i += 1
                if i >= len(lines):
                    break
                continue
            logical.append(body)
            i += 1
            break
        joined = "".join(logical).strip()
        keyword, _, value = joined.partition(" ")
        keyword = keyword.upper()
        if "\t" in keyword:
            keyword, _, rest = keyword.partition("\t")
            value = rest + " " + value
        if keyword == "FROM" and not [w for w in value.split() if not w.startswith("--")]:
            raise UsageError(f"{path}:{start + 1}: FROM names no image",
                             hint="write FROM image[:tag] [AS name], as `docker build` requires")
        heredocs: tuple[str, ...] = ()
        if keyword in HEREDOC_KEYWORDS:
            found = _HEREDOC_RE.findall(value)
            heredocs = tuple(m[2] for m in found)
            for dash, _q, delim in found:
                while True:
                    if i >= len(lines):
                        raise UsageError(
                            f"{path}:{start + 1}: heredoc <<{delim} is never closed",
                            hint=f"end it with a line holding only {delim}",
                        )
                    body = _body(lines[i])
                    i += 1
                    if (body.lstrip("\t") if dash else body) == delim:
                        break
        items.append(Item("instruction", "".join(lines[start:i]), start + 1, i, keyword, value.strip(), heredocs))
    return Dockerfile(tuple(items), escape, newline, directives)


_DE_ECR_RE = re.compile(r"\$\{?DE_ECR\}?")


def is_migrated(df: Dockerfile) -> bool:
    """True when the final stage already starts FROM a digest-pinned base with MOJAP_IMAGE_VERSION."""
    starts = df.stage_starts()
    if not starts:
        return False
    final = df.items[starts[-1]]
    rest = [i for i in df.items[starts[-1]:] if i.is_instruction]
    return (
        "@sha256:" in final.value
        and not any(_DE_ECR_RE.search(i.raw) for i in df.instructions())
        and any(i.keyword == "ARG" and i.value.startswith("MOJAP_IMAGE_VERSION") for i in rest)
    )
