"""Ignore lists: `.trivyignore` and `.trivyignore.yaml` parsed into entries that remember where they came from.

Pure functions (text in, entries and problems out) plus a thin `load_ignore_file` for the filesystem.
A malformed entry is reported as a `Problem` (source:line and what to fix) and does NOT ignore anything,
which keeps the gate closed.

`.trivyignore` (Trivy's format): one ID per line, `#` comments, optional `exp:YYYY-MM-DD` (the entry is
active until 00:00 UTC of that date). ap-build also accepts a trailing ` # comment` after the ID; that
comment, or the comment line just above the entry, is the entry's reason.
`.trivyignore.yaml`: top-level lists `vulnerabilities`, `secrets`, `misconfigurations`, `licenses` of
`{id, paths, purls, expired_at, statement}`. `.grype.yaml`/`.grype.yml`: Grype's `ignore:` rules
(`ap_build.scan.grype`). Every file is bounded (MAX_IGNORE_BYTES, MAX_IGNORE_LINES) and parsed in linear time.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from ap_build.errors import UsageError
from ap_build.scan.doublestar import GlobError, check_v4
from ap_build.scan.entries import (
    MAX_IGNORE_BYTES,
    MAX_IGNORE_LINES,
    IgnoreEntry,
    IgnoreFileTooLarge,
    Problem,
    check_bounds,
    parse_date,
)
from ap_build.scan.grype import parse_grype
from ap_build.scan.inputs import InputError, decode, read_regular
from ap_build.yamlpos import Map, Seq, YamlError, load_all

YAML_SECTIONS = ("vulnerabilities", "secrets", "misconfigurations", "licenses")
YAML_KEYS = {"id", "paths", "purls", "expired_at", "statement"}
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+-]*$")
_COMMENT_RE = re.compile(r"\s#")
GRYPE_FILES = (".grype.yaml", ".grype.yml")
IGNORE_FILES = (".trivyignore", ".trivyignore.yaml", ".trivyignore.yml", *GRYPE_FILES)
__all__ = [
    "GRYPE_FILES", "IGNORE_FILES", "MAX_IGNORE_BYTES", "MAX_IGNORE_LINES", "IgnoreEntry", "IgnoreFileTooLarge",
    "Problem", "check_bounds", "discover_ignore_files", "load_ignore_file", "parse_date", "parse_grype",
    "parse_ignore_text", "parse_label_ignores", "parse_trivyignore", "parse_trivyignore_yaml",
]


def parse_trivyignore(text: str, source: str) -> tuple[list[IgnoreEntry], list[Problem]]:
    """Parse `.trivyignore` text (pure)."""
    entries: list[IgnoreEntry] = []
    problems: list[Problem] = []
    above = ""  # the comment line just above an entry is its reason, unless it has one at its end
    for n, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            above = stripped.lstrip("#").strip()
            continue
        parts = _COMMENT_RE.split(raw, maxsplit=1) if "#" in raw else [raw]
        line, comment = parts[0].strip(), (parts[1] if len(parts) > 1 else "").strip() or above
        above = ""
        fields = line.split()
        vid, rest = fields[0], fields[1:]
        if not _ID_RE.match(vid) or vid.startswith("exp:"):
            problems.append(
                Problem(
                    source, n, f"{vid!r} is not a vulnerability/secret ID; expected e.g. `CVE-2024-1234 exp:2026-12-31`"
                )
            )
            continue
        expires: dt.date | None = None
        bad = False
        unknown = [t for t in rest if not t.startswith("exp:")]
        for token in (t for t in rest if t.startswith("exp:")):
            expires = parse_date(token[4:])
            if expires is None:
                problems.append(
                    Problem(
                        source,
                        n,
                        f"{vid}: unreadable expiry {token!r}; write exp:YYYY-MM-DD "
                        "(the entry ignores nothing until fixed)",
                    )
                )
                bad = True
        if unknown:
            problems.append(
                Problem(
                    source,
                    n,
                    f"{vid}: unexpected {' '.join(unknown)!r}; one ID per line, optionally "
                    "followed by exp:YYYY-MM-DD and a # comment (the entry ignores nothing)",
                )
            )
            bad = True
        if not bad:
            entries.append(IgnoreEntry(vid, source, n, expires, statement=comment))
    return entries, problems


def parse_trivyignore_yaml(text: str, source: str) -> tuple[list[IgnoreEntry], list[Problem]]:
    """Parse `.trivyignore.yaml` text with line numbers (pure)."""
    try:
        docs = load_all(text)
    except YamlError as exc:
        return [], [Problem(source, exc.line, exc.message)]
    doc = docs[0] if docs else None
    if doc is None:
        return [], []
    if not isinstance(doc, Map):
        return [], [Problem(source, 1, f"expected a mapping with keys {', '.join(YAML_SECTIONS)}")]
    entries: list[IgnoreEntry] = []
    problems: list[Problem] = []
    for key, items in doc.items():
        line = doc.lines[key]
        if key not in YAML_SECTIONS:
            problems.append(
                Problem(source, line, f"unknown section {key!r}; expected one of {', '.join(YAML_SECTIONS)}")
            )
            continue
        if items is None:
            continue
        if not isinstance(items, Seq):
            problems.append(
                Problem(source, line, f"{key} must be a list of {{id, paths, purls, expired_at, statement}}")
            )
            continue
        for item, iline in zip(items, items.lines, strict=True):
            entry = _yaml_entry(item, key, source, iline, problems)
            if entry:
                entries.append(entry)
    return entries, problems


def _yaml_entry(item: object, section: str, source: str, line: int, problems: list[Problem]) -> IgnoreEntry | None:
    if not isinstance(item, Map):
        problems.append(Problem(source, line, f"{section} entries must be mappings with an `id`"))
        return None
    unknown = sorted(set(map(str, item)) - YAML_KEYS)
    vid = str(item.get("id") or "").strip()
    if not vid or not _ID_RE.match(vid):
        problems.append(Problem(source, line, "entry without a valid `id` (e.g. id: CVE-2024-1234)"))
        return None
    if unknown:
        problems.append(
            Problem(
                source,
                line,
                f"{vid}: unknown key(s) {', '.join(unknown)}; allowed: "
                f"{', '.join(sorted(YAML_KEYS))} (the entry ignores nothing)",
            )
        )
        return None
    expires = None
    if item.get("expired_at") is not None:
        raw = item["expired_at"]
        expires = parse_date(str(raw).strip())
        if expires is None:
            problems.append(
                Problem(
                    source,
                    item.lines.get("expired_at", line),
                    f"{vid}: unreadable expired_at {str(raw)!r}; write a real date YYYY-MM-DD "
                    "(the entry ignores nothing until fixed)",
                )
            )
            return None
    lists: dict[str, tuple[str, ...]] = {}
    for k in ("paths", "purls"):
        v = item.get(k)
        if v is None:
            lists[k] = ()
        elif isinstance(v, list) and all(isinstance(x, str) for x in v):
            lists[k] = tuple(v)
        else:
            problems.append(Problem(source, line, f"{vid}: {k} must be a list of strings"))
            return None
    for pattern in lists["paths"]:  # Trivy refuses the whole file for a path its doublestar (v4) rejects
        try:
            check_v4(pattern)
        except GlobError as exc:
            shown = repr(pattern if len(pattern) <= 80 else pattern[:80] + "...")
            problems.append(Problem(source, item.lines.get("paths", line), f"{vid}: path {shown} is not a glob "
                                    f"Trivy accepts: {exc} (the entry ignores nothing)"))
            return None
    return IgnoreEntry(
        vid, source, line, expires, lists["paths"], lists["purls"], str(item.get("statement") or ""), section
    )


def parse_ignore_text(text: str, source: str) -> tuple[list[IgnoreEntry], list[Problem]]:
    """Pick the parser from the file name: `.grype.y[a]ml` -> Grype, `.yaml`/`.yml` -> Trivy's YAML,
    anything else -> `.trivyignore` lines (pure). IgnoreFileTooLarge over the bounds."""
    check_bounds(text, source)
    name = source.rsplit("/", 1)[-1]
    if "grype" in name and name.endswith((".yaml", ".yml")):
        return parse_grype(text, source)
    if source.endswith((".yaml", ".yml")):
        return parse_trivyignore_yaml(text, source)
    return parse_trivyignore(text, source)


_GRYPE_DOC = re.compile(r"^ignore:", re.M)


def parse_label_ignores(text: str, source: str) -> tuple[list[IgnoreEntry], list[Problem]]:
    """A base image's list (its label): Grype's YAML when it has a top-level `ignore:` key, else the
    `.trivyignore` format (pure). Over the bounds: one problem, and nothing is ignored."""
    try:
        check_bounds(text, source)
    except IgnoreFileTooLarge as exc:
        return [], [Problem(source, 1, exc.message)]
    if _GRYPE_DOC.search(text):
        return parse_grype(text, source)
    return parse_trivyignore(text, source)


def load_ignore_file(path: Path) -> tuple[list[IgnoreEntry], list[Problem]]:
    """Read and parse one ignore file; UsageError if it cannot be read or is over the bounds."""
    try:
        if (size := path.stat().st_size) > MAX_IGNORE_BYTES:  # never read a huge file into memory
            check_bounds("", str(path), size)
        text = decode(read_regular(path, MAX_IGNORE_BYTES))
    except (OSError, InputError) as exc:
        raise UsageError(
            f"{path}: cannot read ignore file ({getattr(exc, 'strerror', None) or exc})",
            hint="pass a regular UTF-8 file of at most 1 MiB to --ignore-file",
        ) from exc
    return parse_ignore_text(text, str(path))


def discover_ignore_files(directory: Path) -> list[Path]:
    """The repository's own ignore files in `directory`: `.trivyignore`, `.trivyignore.yaml`/`.yml`,
    `.grype.yaml`/`.yml`."""
    return [p for name in IGNORE_FILES if (p := directory / name).is_file()]
