"""Dockerfile tokenizer with exact source spans, and the legacy -> runtime-base rewrite (pure).

Why not `dockerfile-parse` alone: it splits heredoc bodies into bogus instructions and keeps `\\r` in
comment values, and it cannot give back the exact bytes of each item. This tokenizer follows the
Dockerfile reference (parser directives, escape character, line continuations with interleaved comment
and blank lines, BuildKit heredocs `<<EOF`, `<<-EOF`, `<<"EOF"`), and every item keeps its raw text, so
`"".join(item.raw for item in items) == text` and untouched lines stay byte-identical. The tests check
that it agrees with `dockerfile-parse` on every heredoc-free Dockerfile.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field, replace

from ap_build.errors import UsageError
from ap_build.platform import WORKDIR

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


# --- the rewrite ------------------------------------------------------------------------------------
_ETL_RE = re.compile(r"(?<![\w./-])/etl(?=[/\s\"':;,\]]|$)")
_PYTHON_RE = re.compile(r"(?<![\w./$-])python(?![\w.-])")
_DE_ECR_RE = re.compile(r"\$\{?DE_ECR\}?")
_CHMOD_RE = re.compile(r"^chmod\s+(?:-R\s+777|777\s+-R|-R\s+a\+rwx|a\+rwx\s+-R)\s+\S+$")
_USER_ADD_RE = re.compile(r"^(?:adduser|useradd|addgroup|groupadd)\b")
_SHELL_META = set("&|;<>$`*?(){}[]~\\'\"\n#")
ROOT_STEPS = ("RUN", "COPY", "ADD")


@dataclass
class Rewrite:
    """The result of rewriting one Dockerfile: new text and what was done (for the report)."""

    text: str
    changed: bool
    done: list[str] = field(default_factory=list)  # one line per change, with the source line
    notes: list[str] = field(default_factory=list)  # manual follow-ups found while rewriting


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


def _segments(value: str) -> list[str]:
    return [s.strip() for s in value.split("&&")]


def exec_form(command: str) -> tuple[list[str], bool]:
    """Shell-form command -> exec-form argv; (argv, needed_a_shell)."""
    if any(c in _SHELL_META for c in command):
        return ["/bin/sh", "-c", command], True
    return shlex.split(command), False


def _python3(text: str) -> str:
    return _PYTHON_RE.sub("python3", text)


def _etl(text: str) -> str:
    return _ETL_RE.sub(WORKDIR, text)


def _etl_copy(item: Item) -> str:
    """/etl -> WORKDIR in a COPY/ADD; with --from only the destination (the sources are the other stage's)."""
    if "--from" not in item.value or item.heredocs:
        return _etl(item.raw)
    body = item.raw.rstrip("\r\n")
    tail = item.raw[len(body):]
    head, sep, last = body.rpartition(" ")
    return head + sep + _etl(last) + tail if sep else item.raw


def rewrite(
    df: Dockerfile,
    base_image: str,
    *,
    add_python: bool = False,
    path: str = "Dockerfile",
) -> Rewrite:
    """Rewrite a legacy Dockerfile onto the runtime base (final stage; `${DE_ECR}` stages re-based).

    Untouched items keep their exact bytes; new lines use the file's newline convention.
    """
    if is_migrated(df):
        return Rewrite(df.text(), False, [], [])
    starts = df.stage_starts()
    if not starts:
        raise UsageError(f"{path}: no FROM instruction", hint="a Dockerfile needs at least one FROM")
    nl = df.newline
    final_at = starts[-1]
    done: list[str] = []
    notes: list[str] = []
    out: list[Item | str] = []  # strings are new lines (already terminated)
    drops: list[int] = []  # positions in `out` where an instruction was removed
    removed_users: set[str] = set()

    def where(item: Item) -> str:
        return f"{path}:{item.line}"

    def terminated(raw: str) -> str:
        return raw if raw.endswith(("\n", "\r")) else raw + nl

    # Users created by the legacy image (adduser daguser ...), so their USER/chown lines go too.
    for item in df.items[final_at:]:
        if item.keyword == "RUN" and not item.heredocs:
            for seg in _segments(item.value):
                if _USER_ADD_RE.match(seg):
                    words = [w for w in shlex.split(seg, posix=True) if not w.startswith("-")] if seg else []
                    if len(words) > 1:
                        removed_users.add(words[-1])

    stage = -1
    for n, item in enumerate(df.items):
        if item.keyword == "FROM":
            stage += 1
        if n < final_at:
            if item.keyword == "ARG" and item.value.split("=")[0].strip() == "DE_ECR":
                out.append(item)  # decided below, once we know whether any FROM still uses it
            elif item.keyword == "FROM" and _DE_ECR_RE.search(item.value):
                alias = _alias(item.value)
                out.append(f"FROM {base_image}{alias}{nl}")
                out.append(f"USER root{nl}")
                done.append(
                    f"{where(item)}: build stage{alias.replace(' AS ', ' ')} re-based from {item.value.split()[0]} "
                    "(the old ECR) onto the runtime base, as root like before; its other lines are unchanged"
                )
            else:
                if item.keyword == "FROM":
                    notes.append(f"{where(item)}: build stage FROM {item.value} left unchanged "
                                 "(only the final stage is migrated; check that this image is still reachable)")
                out.append(item)
            continue
        if n == final_at:
            alias = _alias(item.value)
            out.append(f"FROM {base_image}{alias}{nl}")
            done.append(f"{where(item)}: FROM {item.value.split()[0]} -> FROM {base_image}")
            if not any(i.keyword == "ARG" and i.value.startswith("MOJAP_IMAGE_VERSION") for i in df.items[n:]):
                out.append(f'ARG MOJAP_IMAGE_VERSION="default"{nl}')
                out.append(f'ENV MOJAP_IMAGE_VERSION="${{MOJAP_IMAGE_VERSION}}"{nl}')
                done.append(f"{where(item)}: added ARG/ENV MOJAP_IMAGE_VERSION (the release tag, as a build-arg)")
            continue
        if not item.is_instruction:
            out.append(item)
            continue
        kw = item.keyword
        if kw == "ARG" and item.value.split("=")[0].strip() == "DE_ECR":
            done.append(f"{where(item)}: dropped ARG DE_ECR")
            drops.append(len(out))
            continue
        if kw == "USER":
            done.append(f"{where(item)}: dropped USER {item.value} (the image now ends as USER ${{CONTAINER_UID}})")
            drops.append(len(out))
            continue
        if kw == "RUN" and not item.heredocs:
            segs = _segments(item.value)
            keep = [s for s in segs if not _drop_segment(s, removed_users)]
            if not keep:
                done.append(f"{where(item)}: dropped RUN {item.value}")
                drops.append(len(out))
                continue
            if len(keep) < len(segs):
                dropped = [s for s in segs if s not in keep]
                sep = " \\" + nl + "    && " if len(keep) > 1 else ""
                raw = "RUN " + sep.join(keep) + nl
                done.append(f"{where(item)}: removed {' ; '.join(dropped)} from a RUN")
                item = replace(item, raw=raw, value=" && ".join(keep))
        if kw == "RUN" and item.heredocs and re.search(r"chmod\s+-R\s+777|adduser|useradd", item.raw):
            notes.append(f"{where(item)}: a heredoc RUN changes permissions or users; check it by hand")
        if kw in ("ENTRYPOINT", "CMD") and not item.value.startswith("["):
            argv, shell = exec_form(_etl(_python3(item.value)))
            raw = f"{kw} {json.dumps(argv)}{nl}"
            done.append(f"{where(item)}: {kw} {item.value} -> exec form {json.dumps(argv)}")
            if shell:
                notes.append(
                    f"{where(item)}: {kw} uses shell syntax, so it runs through /bin/sh -c; "
                    "consider a plain argv or an entrypoint script"
                )
            out.append(raw)
            continue
        new = _etl_copy(item) if kw in ("COPY", "ADD") else _etl(item.raw)
        if kw in ("RUN", "ENTRYPOINT", "CMD"):
            new = _python3(new)
        if new != item.raw:
            what = []
            if _ETL_RE.search(item.raw):
                what.append(f"/etl -> {WORKDIR}")
            if _python3(item.raw) != item.raw and kw in ("RUN", "ENTRYPOINT", "CMD"):
                what.append("python -> python3")
            done.append(f"{where(item)}: {kw} {', '.join(what) or 'rewritten'}")
            out.append(new)
        else:
            out.append(item)

    # A removed instruction between two blank lines leaves one blank line, not two.
    for p in reversed(drops):
        if 0 < p < len(out) and all(isinstance(x, Item) and x.kind == "blank" for x in (out[p - 1], out[p])):
            del out[p]

    # ARG DE_ECR before FROM: dropped when no FROM uses it any more.
    still = any(
        isinstance(x, Item) and x.keyword == "FROM" and _DE_ECR_RE.search(x.value) for x in out
    )
    if not still:
        kept = []
        for x in out:
            if isinstance(x, Item) and x.keyword == "ARG" and x.value.split("=")[0].strip() == "DE_ECR":
                done.append(f"{where(x)}: dropped ARG DE_ECR")
                continue
            kept.append(x)
        out = kept

    # Wrap the steps that need root: USER root before the first RUN/COPY/ADD of the final stage (above its
    # comments), USER ${CONTAINER_UID} after the last one; then the image ends as user 1000.
    final_pos = max(k for k, x in enumerate(out) if (isinstance(x, str) and x.startswith("FROM ")) or
                    (isinstance(x, Item) and x.keyword == "FROM"))
    steps = [k for k in range(final_pos + 1, len(out)) if _kw(out[k]) in ROOT_STEPS]
    if steps:
        first, last = steps[0], steps[-1]
        if isinstance(out[last], Item):
            out[last] = terminated(out[last].raw)
        out.insert(last + 1, f"USER ${{CONTAINER_UID}}{nl}")
        while first - 1 > final_pos and isinstance(out[first - 1], Item) and out[first - 1].kind == "comment":
            first -= 1
        block = [f"USER root{nl}"]
        if add_python:
            block += [
                f"# The R runtime base has no Python; botor/reticulate need one (see MIGRATION.md).{nl}",
                f"RUN apt-get update \\{nl}"
                f"    && apt-get install --yes --no-install-recommends python3 python3-venv python3-pip \\{nl}"
                f"    && apt-get clean && rm -rf /var/lib/apt/lists/*{nl}",
            ]
            done.append(f"{path}: added python3 from the distribution as root (the R base has no Python)")
        out[first:first] = block
        done.append(f"{path}: root steps wrapped in USER root ... USER ${{CONTAINER_UID}}; the image ends as 1000")
    if not any(_kw(x) == "WORKDIR" for x in out[final_pos:]):
        out.insert(final_pos + 3 if _kw(out[final_pos + 1]) == "ARG" else final_pos + 1, f"WORKDIR {WORKDIR}{nl}")
        done.append(f"{path}: added WORKDIR {WORKDIR}")
    text = "".join(x if isinstance(x, str) else x.raw for x in out)
    return Rewrite(text, text != df.text(), done, notes)


def _kw(x: Item | str) -> str:
    if isinstance(x, Item):
        return x.keyword
    return x.split(" ", 1)[0].strip().upper() if not x.startswith("#") else ""


def _alias(value: str) -> str:
    words = value.split()
    for k, w in enumerate(words[:-1]):
        if w.upper() == "AS":
            return f" AS {words[k + 1]}"
    return ""


def _drop_segment(seg: str, users: set[str]) -> bool:
    if _CHMOD_RE.match(seg) or _USER_ADD_RE.match(seg):
        return True
    return bool(seg.startswith("chown") and any(re.search(rf"\b{re.escape(u)}\b", seg) for u in users))

