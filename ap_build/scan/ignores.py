"""Ignore lists: `.trivyignore` and `.trivyignore.yaml` parsed into entries that remember where they came from.

Pure functions (text in, entries and problems out) plus a thin `load_ignore_file` for the filesystem.
A malformed entry is reported as a `Problem` (source:line and what to fix) and does NOT ignore anything,
which keeps the gate closed.

`.trivyignore` (Trivy's format): one ID per line, `#` comments, optional `exp:YYYY-MM-DD` (the entry is
active until 00:00 UTC of that date). ap-build also accepts a trailing ` # comment` after the ID.
`.trivyignore.yaml`: top-level lists `vulnerabilities`, `secrets`, `misconfigurations`, `licenses` of
`{id, paths, purls, expired_at, statement}`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from ap_build.errors import UsageError

YAML_SECTIONS = ("vulnerabilities", "secrets", "misconfigurations", "licenses")
YAML_KEYS = {"id", "paths", "purls", "expired_at", "statement"}
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+-]*$")


@dataclass(frozen=True)
class IgnoreEntry:
    """One ignore rule and its origin (`source` is a file path or `image:<path in image>`)."""

    id: str
    source: str
    line: int
    expires: dt.date | None = None
    paths: tuple[str, ...] = ()
    purls: tuple[str, ...] = ()
    statement: str = ""
    section: str = "vulnerabilities"

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(frozen=True)
class Problem:
    """A malformed ignore entry: it ignores nothing until fixed."""

    source: str
    line: int
    message: str

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def _parse_date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else None
    except ValueError:
        return None


def parse_trivyignore(text: str, source: str) -> tuple[list[IgnoreEntry], list[Problem]]:
    """Parse `.trivyignore` text (pure)."""
    entries: list[IgnoreEntry] = []
    problems: list[Problem] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = re.split(r"\s#", raw, maxsplit=1)[0].strip()
        if not line or line.startswith("#"):
            continue
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
            expires = _parse_date(token[4:])
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
            entries.append(IgnoreEntry(vid, source, n, expires))
    return entries, problems


def parse_trivyignore_yaml(text: str, source: str) -> tuple[list[IgnoreEntry], list[Problem]]:
    """Parse `.trivyignore.yaml` text with line numbers (pure)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        doc = YAML(typ="rt").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        return [], [Problem(source, line, f"invalid YAML: {getattr(exc, 'problem', None) or exc}")]
    if doc is None:
        return [], []
    if not isinstance(doc, dict):
        return [], [Problem(source, 1, f"expected a mapping with keys {', '.join(YAML_SECTIONS)}")]
    entries: list[IgnoreEntry] = []
    problems: list[Problem] = []
    for key in doc:
        line = doc.lc.key(key)[0] + 1
        if key not in YAML_SECTIONS:
            problems.append(
                Problem(source, line, f"unknown section {key!r}; expected one of {', '.join(YAML_SECTIONS)}")
            )
            continue
        items = doc[key] or []
        if not isinstance(items, list):
            problems.append(
                Problem(source, line, f"{key} must be a list of {{id, paths, purls, expired_at, statement}}")
            )
            continue
        for i, item in enumerate(items):
            iline = items.lc.item(i)[0] + 1 if hasattr(items, "lc") else line
            entry = _yaml_entry(item, key, source, iline, problems)
            if entry:
                entries.append(entry)
    return entries, problems


def _yaml_entry(item: object, section: str, source: str, line: int, problems: list[Problem]) -> IgnoreEntry | None:
    if not isinstance(item, dict):
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
        expires = raw if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime) else None
        if isinstance(raw, dt.datetime):
            expires = raw.date()
        if expires is None:
            expires = _parse_date(str(raw))
        if expires is None:
            problems.append(
                Problem(
                    source,
                    line,
                    f"{vid}: unreadable expired_at {raw!r}; write YYYY-MM-DD (the entry ignores nothing until fixed)",
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
    return IgnoreEntry(
        vid, source, line, expires, lists["paths"], lists["purls"], str(item.get("statement") or ""), section
    )


def parse_ignore_text(text: str, source: str) -> tuple[list[IgnoreEntry], list[Problem]]:
    """Pick the parser from the file name: `.yaml`/`.yml` -> YAML, anything else -> line format (pure)."""
    if source.endswith((".yaml", ".yml")):
        return parse_trivyignore_yaml(text, source)
    return parse_trivyignore(text, source)


def load_ignore_file(path: Path) -> tuple[list[IgnoreEntry], list[Problem]]:
    """Read and parse one ignore file; UsageError if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"{path}: cannot read ignore file ({exc})", hint="pass a readable file to --ignore-file"
        ) from exc
    return parse_ignore_text(text, str(path))


def discover_ignore_files(directory: Path) -> list[Path]:
    """The repository's own ignore files in `directory` (`.trivyignore`, `.trivyignore.yaml`/`.yml`)."""
    return [
        p for name in (".trivyignore", ".trivyignore.yaml", ".trivyignore.yml") if (p := directory / name).is_file()
    ]
