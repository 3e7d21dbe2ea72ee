"""Exceptions from one ignore format to another (pure): `.trivyignore.yaml` and Grype's `.grype.yaml`.

Nothing is ever carried over broader than it was written. A Grype rule becomes Trivy entries only when
each field has an exact Trivy equivalent: `vulnerability` -> `id`, `reason` -> `statement`, `expires-at`
-> `expired_at`, `package` {`type`, `name` (a literal), `version`} -> a PURL, `package.location` ->
`paths`. Anything else (a rule with no ID, a regular-expression name, `fix-state`, `namespace`) is
listed as not carried over, unless the findings it ignores in an image are given: then it becomes
exactly those (ID, PURL) pairs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ap_build.scan.goregex import is_likely_regex
from ap_build.scan.ignores import IgnoreEntry

_LITERAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_PURL_TO_GRYPE = {"deb": "deb", "rpm": "rpm", "apk": "apk", "pypi": "python", "npm": "npm", "gem": "gem",
                  "maven": "java-archive", "golang": "go-module", "cran": "R-package", "cargo": "rust-crate",
                  "composer": "php-composer", "nuget": "dotnet"}
_NAMESPACE = {"deb": "debian/"}  # the platform's runtime images are Debian
# Advisory ID schemes: a bare `.trivyignore` ID of another shape is a secret rule ID (`aws-access-key-id`)
VULN_ID = re.compile(r"^(CVE|GHSA|DSA|DLA|DTSA|PYSEC|GO|RUSTSEC|OSV|ALAS\d*|RHSA|USN|ELSA|TEMP|SNYK|BIT|MAL)-",
                     re.IGNORECASE)


def is_secret_rule(e: IgnoreEntry) -> bool:
    """A secret exception: in a YAML `secrets:` section, or a bare `.trivyignore` ID that is no advisory ID."""
    return e.section == "secrets" or (e.rule is None and e.format == "trivyignore" and not VULN_ID.match(e.id))


@dataclass
class Converted:
    """A converted document and what could not be carried over (one line each, naming file:line)."""

    doc: dict[str, Any]
    skipped: list[str] = field(default_factory=list)
    count: int = 0


def _expiry(e: IgnoreEntry) -> str | None:
    return e.expires.isoformat() if e.expires else None


def _rule_purl(rule: Any) -> str | None:
    """The PURL of a Grype rule's package scope, or None when it has none; ValueError when inexact."""
    from urllib.parse import quote

    if not (rule.name or rule.version or rule.purl_type):
        return None
    if not rule.purl_type or not rule.name or is_likely_regex(rule.name) or not _LITERAL.fullmatch(rule.name):
        raise ValueError("its package scope needs a package type and a literal name to become a PURL")
    purl = f"pkg:{rule.purl_type}/{_NAMESPACE.get(rule.purl_type, '')}{rule.name}"
    if rule.version:
        epoch, _, version = rule.version.partition(":") if ":" in rule.version else ("", "", rule.version)
        purl += f"@{quote(version, safe='.-_~')}" + (f"?epoch={epoch}" if epoch else "")
    return purl


def trivy_items(e: IgnoreEntry, found: list[Any] | None) -> tuple[list[dict[str, Any]], str | None]:
    """`.trivyignore.yaml` items for one entry, or ([], why not)."""
    base: dict[str, Any] = {}
    if e.statement:
        base["statement"] = e.statement
    if e.expires:
        base["expired_at"] = _expiry(e)
    if e.rule is None:
        item = {"id": e.id, **({"paths": list(e.paths)} if e.paths else {}),
                **({"purls": list(e.purls)} if e.purls else {}), **base}
        return [item], None
    rule = e.rule
    if found is not None:  # the findings it ignores in the image: exactly those
        by_id: dict[str, list[str]] = {}
        for f in found:
            by_id.setdefault(f.id, [])
            if f.purl and f.purl not in by_id[f.id]:
                by_id[f.id].append(f.purl)
        if not by_id:
            return [], f"{e.where}: {e.id} ignores nothing in the image (stale), not carried over"
        return [{"id": vid, "purls": purls, **base} for vid, purls in sorted(by_id.items())], None
    if not rule.vulnerability:
        return [], f"{e.where}: a rule without a vulnerability ID {e.id} has no Trivy equivalent; pass --image"
    if rule.fix_state or rule.namespace:
        return [], f"{e.where}: {e.id}: fix-state/namespace have no Trivy equivalent; pass --image"
    try:
        purl = _rule_purl(rule)
    except ValueError as exc:
        return [], f"{e.where}: {e.id}: {exc}"
    item: dict[str, Any] = {"id": rule.vulnerability}
    if purl:
        item["purls"] = [purl]
    if rule.location:
        item["paths"] = [rule.location.lstrip("/")]
    return [{**item, **base}], None


def to_trivyignore_yaml(entries: list[IgnoreEntry], found: dict[int, list[Any]] | None = None) -> Converted:
    """Entries -> one `.trivyignore.yaml` document (`found`: findings each entry ignores in an image)."""
    out = Converted({"vulnerabilities": [], "secrets": []})
    for i, e in enumerate(entries):
        if e.section not in ("vulnerabilities", "secrets"):
            continue
        items, why = trivy_items(e, None if found is None else found.get(i, []))
        if why:
            out.skipped.append(why)
        section = "secrets" if is_secret_rule(e) else "vulnerabilities"
        out.doc[section] += items
        out.count += len(items)
    out.doc = {k: v for k, v in out.doc.items() if v}
    return out


def grype_rules(e: IgnoreEntry) -> tuple[list[dict[str, Any]], str | None]:
    """Grype ignore rules for one entry, or ([], why not)."""
    extra: dict[str, Any] = {}
    if e.statement:
        extra["reason"] = e.statement
    if e.expires:
        extra["expires-at"] = _expiry(e)
    if e.rule is not None:
        r = e.rule
        rule: dict[str, Any] = {k: v for k, v in (("vulnerability", r.vulnerability), ("fix-state", r.fix_state),
                                                   ("namespace", r.namespace)) if v}
        pkg = {k: v for k, v in (("name", r.name), ("version", r.version), ("location", r.location)) if v}
        if r.purl_type:
            pkg["type"] = _PURL_TO_GRYPE.get(r.purl_type, r.purl_type)
        if pkg:
            rule["package"] = pkg
        if r.include_aliases:
            rule["include-aliases"] = True
        return [{**rule, **extra}], None
    if is_secret_rule(e):
        return [], f"{e.where}: {e.id} is a secret rule; Grype does not scan for secrets, not carried over"
    rules: list[dict[str, Any]] = []
    for purl in e.purls or [""]:
        rule = {"vulnerability": e.id}
        if purl:
            pkg = _purl_package(purl)
            if pkg is None:
                return [], f"{e.where}: {e.id}: PURL {purl!r} has no Grype package type, not carried over"
            rule["package"] = pkg
        for path in e.paths or [""]:
            one = {**rule, "package": dict(rule.get("package") or {})}
            if path:
                one["package"]["location"] = path if path.startswith(("/", "**")) else "/" + path
            if not one["package"]:
                del one["package"]
            rules.append({**one, **extra})
    return rules, None


def _purl_package(purl: str) -> dict[str, str] | None:
    from urllib.parse import unquote

    body, _, quals = purl[4:].partition("?")
    path, _, version = body.partition("@")
    typ, _, rest = path.partition("/")
    if typ not in _PURL_TO_GRYPE:
        return None
    name = unquote(rest.rsplit("/", 1)[-1])
    epoch = dict(q.split("=", 1) for q in quals.split("&") if "=" in q).get("epoch")
    # Grype compares a name without regex characters literally; any other is escaped into an exact regex
    pkg = {"name": re.escape(name).replace("\\-", "-") if is_likely_regex(name) else name, "type": _PURL_TO_GRYPE[typ]}
    if version:
        pkg["version"] = (f"{epoch}:" if epoch else "") + unquote(version)
    return pkg


def to_grype(entries: list[IgnoreEntry]) -> Converted:
    """Entries -> one Grype configuration `{ignore: [...]}` (with `expires-at`, which ap-build enforces)."""
    out = Converted({"ignore": []})
    for e in entries:
        if e.section not in ("vulnerabilities", "secrets"):
            continue
        rules, why = grype_rules(e)
        if why:
            out.skipped.append(why)
        out.doc["ignore"] += rules
        out.count += len(rules)
    return out


def dump_yaml(doc: dict[str, Any], header: str = "") -> str:
    """Block-style YAML, keys in the order given, with a `#` comment header."""
    import yaml

    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)
    lines = [f"# {h}".rstrip() for h in header.splitlines()] if header else []
    return "\n".join([*lines, body]) if lines else body


def grype_to_trivyignore_yaml(text: str, source: str) -> tuple[str, list[str]]:
    """A legacy repository's `.grype.yaml` -> `.trivyignore.yaml` text and what was not carried over (pure)."""
    from ap_build.scan.grype import parse_grype

    entries, problems = parse_grype(text, source)
    conv = to_trivyignore_yaml(entries)
    skipped = [f"{p.where}: {p.message}" for p in problems] + conv.skipped
    header = (f"Converted by `ap-build migrate` from {source.rsplit('/', 1)[-1]} (Grype) for `ap-build scan`:\n"
              "IDs, package scopes, reasons (statement) and expiry (expired_at, enforced) carried over.")
    if skipped:
        header += "\nNOT carried over (see MIGRATION.md):\n" + "\n".join(f"  - {s}" for s in skipped)
    return dump_yaml(conv.doc or {"vulnerabilities": []}, header), skipped


GRYPE_FILES = (".grype.yaml", ".grype.yml")
MIGRATED_IGNORE_FILE = ".trivyignore.yaml"


def migrate_grype(files: dict[str, bytes], listing: frozenset[str] | set[str]) -> tuple[list[tuple], list[str]]:
    """`ap-build migrate`'s Grype step (pure): file operations `(action, path, reason, old, new)` and notes.

    The repository's `.grype.yaml`/`.grype.yml` becomes `.trivyignore.yaml` (unless that exists). The Grype
    file is deleted only when every rule was carried over; otherwise it stays, and the notes list each
    rule left behind (`file:line` and why), so nothing is lost silently.
    """
    ops: list[tuple] = []
    notes: list[str] = []
    for name in GRYPE_FILES:
        if name not in files:
            continue
        if MIGRATED_IGNORE_FILE in listing:
            notes.append(f"{name}: not converted, {MIGRATED_IGNORE_FILE} already exists; merge them by hand "
                         f"(`ap-build exceptions export --format trivyignore-yaml` prints both as one)")
            continue
        try:
            text = files[name].decode("utf-8")
        except UnicodeDecodeError:
            notes.append(f"{name}: not UTF-8 text, not converted")
            continue
        converted, skipped = grype_to_trivyignore_yaml(text, name)
        ops.append(("add", MIGRATED_IGNORE_FILE, f"the exceptions of {name}, for `ap-build scan`", None,
                    converted.encode("utf-8")))
        if skipped:
            notes += [f"not carried over from {s}" for s in skipped]
            notes.append(f"{name} is kept: it holds rules {MIGRATED_IGNORE_FILE} could not carry over")
        else:
            ops.append(("delete", name, f"converted into {MIGRATED_IGNORE_FILE}", files[name], None))
        break
    return ops, notes
