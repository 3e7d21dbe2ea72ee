"""A repository's vulnerability exceptions as one set: check their hygiene, export them to another format.

The set: the repository's ignore files (`.trivyignore`, `.trivyignore.yaml`, `.grype.yaml`, found as
`ap-build scan` finds them, or given), plus the base image's own list (from an image's label). `check` is
pure policy over the entries; `export` renders one document (`ap_build.scan.convert`, `ap_build.scan.vex`)
and, with an image, resolves each exception to exactly the findings it ignores there (one Trivy run).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ap_build.scan.ignores import IgnoreEntry, Problem, load_ignore_file

FORMATS = ("openvex", "trivyignore-yaml", "grype")


@dataclass
class Exceptions:
    """Every entry with its origin, the problems found while reading them, and the files read."""

    entries: list[IgnoreEntry]
    problems: list[Problem]
    sources: list[str]
    base: list[IgnoreEntry] = field(default_factory=list)


def base_list(base: str) -> tuple[list[IgnoreEntry], list[Problem], str]:
    """The base image's list: an ignore file, or the label of an engine image (no scan, no registry)."""
    from ap_build.platform import BASE_TRIVYIGNORE_LABEL
    from ap_build.scan.gate import BASE_IGNORES_SOURCE
    from ap_build.scan.ignores import parse_label_ignores

    path = Path(base)
    if path.is_file():
        entries, problems = load_ignore_file(path)
        return entries, problems, str(path)
    from ap_build.engine import Engine

    labels = (Engine.connect().inspect(base).get("Config") or {}).get("Labels") or {}
    text = labels.get(BASE_TRIVYIGNORE_LABEL)
    if text is None:
        return [], [], f"{base} (no {BASE_TRIVYIGNORE_LABEL} label)"
    entries, problems = parse_label_ignores(text, BASE_IGNORES_SOURCE)
    return entries, problems, BASE_IGNORES_SOURCE


def gather(ignore_files: list[Path] | None, workdir: Path, base: str | None = None) -> Exceptions:
    """The repository's exceptions (and the base's, from `base`: a file or an engine image)."""
    from ap_build.scan.gate import repo_ignores

    entries, problems, sources = repo_ignores(ignore_files, workdir)
    ex = Exceptions(entries, problems, sources)
    if base:
        b_entries, b_problems, b_source = base_list(base)
        ex.base, ex.problems = b_entries, problems + b_problems
        ex.sources.append(b_source)
    return ex


@dataclass
class Violation:
    entry: IgnoreEntry
    kind: str  # expired | no-reason | no-expiry | expiry-too-far | duplicate | expiring | alternation
    message: str
    blocking: bool = True

    def to_dict(self) -> dict[str, Any]:
        e = self.entry
        return {"id": e.id, "source": e.source, "line": e.line, "kind": self.kind, "message": self.message,
                "blocking": self.blocking}


def _scope(e: IgnoreEntry) -> tuple[Any, ...]:
    """What an entry ignores, comparable across formats (a Grype rule naming only an ID = a bare ID)."""
    rule = e.rule
    if rule is not None and type(rule)(vulnerability=rule.vulnerability) == rule:
        rule = None
    return (e.id, e.section, tuple(sorted(e.paths)), tuple(sorted(e.purls)), rule)


def _alternation(e: IgnoreEntry) -> str:
    """Grype anchors `a|b` as `^a|b$`: say what such a `package.name` really matches (kept as Grype reads it)."""
    if e.rule is None or not e.rule.name:
        return ""
    from ap_build.scan.goregex import PatternError, compile_name

    try:
        return compile_name(e.rule.name).alternation_warning
    except PatternError:
        return ""


def check(
    ex: Exceptions,
    *,
    today: dt.date,
    warn_expiry_days: int = 14,
    require_reason: bool = False,
    max_expiry_days: int | None = None,
) -> tuple[bool, list[Violation]]:
    """Hygiene without an image (pure): (passed, findings). Malformed entries and expired ones always fail;
    `require_reason` and `max_expiry_days` are CI policy; duplicates of the base's entries and entries
    expiring soon are warnings."""
    out: list[Violation] = []
    base_scopes = {_scope(b): b for b in ex.base}
    for own, e in [*((True, e) for e in ex.entries), *((False, e) for e in ex.base)]:
        if e.expires is not None and today >= e.expires:
            out.append(Violation(e, "expired", f"expired on {e.expires}: it ignores nothing, the finding blocks"))
            continue
        if e.expires is not None and (e.expires - today).days <= warn_expiry_days:
            out.append(Violation(e, "expiring", f"expires in {(e.expires - today).days} day(s)", blocking=False))
        if require_reason and own and not e.statement.strip():
            out.append(Violation(e, "no-reason", "no reason given (a `# comment` on the line, `statement:` or "
                                                 "`reason:`)"))
        if max_expiry_days is not None and own:
            if e.expires is None:
                out.append(Violation(e, "no-expiry", f"no expiry; at most {max_expiry_days} days ahead"))
            elif (e.expires - today).days > max_expiry_days:
                out.append(Violation(e, "expiry-too-far", f"expires {e.expires}, more than {max_expiry_days} days "
                                                          "ahead"))
        if (warning := _alternation(e)) and own:
            out.append(Violation(e, "alternation", warning, blocking=False))
        if own and (dup := base_scopes.get(_scope(e))) is not None:
            out.append(Violation(e, "duplicate", f"the base image already ignores it ({dup.where}): remove it",
                                 blocking=False))
    passed = not ex.problems and not any(v.blocking for v in out)
    return passed, out


def found_in_image(image: str, ex: Exceptions, opts: Any) -> tuple[list[IgnoreEntry], dict[int, list[Any]], str | None]:
    """Scan `image` once: every entry (the base's from its label included), the findings each ignores
    there, and the image's PURL for VEX products."""
    from ap_build.scan.gate import scan
    from ap_build.scan.policy import Policy, matches
    from ap_build.scan.vex import image_purl

    result = scan(image, Policy(), opts, ignore_files=[Path(s) for s in ex.sources if Path(s).is_file()])
    entries = [s.entry for s in result.verdict.ignores]
    vulns = [f for f in result.verdict.findings if f.kind == "vulnerability" and f.vex is None]
    found = {i: [f for f in vulns if matches(e, f)] for i, e in enumerate(entries)}
    return entries, found, image_purl(result.report)


def render(fmt: str, entries: list[IgnoreEntry], found: dict[int, list[Any]] | None, product: str | None,
           *, now: dt.datetime) -> tuple[str, list[str], int]:
    """(document text, what was not exported, how many items) in `fmt` (pure)."""
    import json

    from ap_build.scan.convert import dump_yaml, to_grype, to_trivyignore_yaml

    if fmt == "openvex":
        from ap_build.scan.vex import openvex_document

        doc, skipped = openvex_document(entries, found, product=product, today=now.date(), now=now)
        return json.dumps(doc, indent=2) + "\n", skipped, len(doc["statements"])
    header = f"Exported by `ap-build exceptions export --format {fmt}` on {now.date().isoformat()}."
    if fmt == "grype":
        conv = to_grype(entries)
        header += "\n`expires-at` is enforced by `ap-build scan` (Grype itself ignores it)."
    else:
        conv = to_trivyignore_yaml(entries, found)
    return dump_yaml(conv.doc, header), conv.skipped, conv.count
