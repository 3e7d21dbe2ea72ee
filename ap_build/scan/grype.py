"""Grype ignore rules (`.grype.yaml` / `.grype.yml`) matched against Trivy's findings (pure).

Grype's semantics (anchore/grype `grype/match/ignore.go`): a rule ignores a match only when EVERY field
it names matches; a rule naming no field ignores nothing. `package.name` and `package.upstream-name` are
anchored regular expressions, `package.location` a doublestar glob over the package's file paths, every
other field an exact value. ap-build adds what Grype lacks: `expires-at: YYYY-MM-DD` is enforced (the rule
is active until 00:00 UTC of that date, as Trivy's `exp:`), and hygiene (stale, expiring, expired).

A field that cannot be evaluated on a Trivy finding (`package.upstream-name` and `match-type`: Trivy's
report does not carry them; `vex-status`/`vex-justification`: in Grype they filter VEX documents, which
ap-build hands to Trivy with `--vex`) makes the rule a problem at its `file:line`, and the rule ignores
nothing: a rule is never silently broader than it was written. Like the platform's CI merge (`yq
eval-all`), every YAML document of the file is read; keys other than `ignore` are Grype settings, not rules.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ap_build.scan.doublestar import GlobError, check_v2, match_v2
from ap_build.scan.entries import IgnoreEntry, Problem, parse_date
from ap_build.scan.goregex import NameMatcher, PatternError, compile_name
from ap_build.yamlpos import Map, Seq, YamlError, load_all

RULE_KEYS = (
    "vulnerability", "reason", "fix-state", "package", "namespace", "vex-status", "vex-justification",
    "match-type", "include-aliases", "expires-at",
)
PACKAGE_KEYS = ("name", "version", "type", "location", "language", "upstream-name")
UNMAPPABLE = {
    "package.upstream-name": "Trivy's report does not name a finding's source package",
    "match-type": "Trivy's report does not say how a finding was matched",
    "vex-status": "in Grype it filters VEX documents: pass the VEX document with --vex (Trivy applies it)",
    "vex-justification": "in Grype it filters VEX documents: pass the VEX document with --vex (Trivy applies it)",
}
# Grype's fix states -> Trivy's statuses.
FIX_STATES = {
    "fixed": frozenset({"fixed"}),
    "not-fixed": frozenset({"affected", "fix_deferred", "under_investigation"}),
    "wont-fix": frozenset({"will_not_fix", "end_of_life"}),
    "unknown": frozenset({"unknown", ""}),
}
# Grype's package types and languages -> PURL types (what Trivy's findings carry).
TYPES = {
    "deb": "deb", "rpm": "rpm", "apk": "apk", "python": "pypi", "npm": "npm", "gem": "gem",
    "java-archive": "maven", "jenkins-plugin": "maven", "go-module": "golang", "R-package": "cran",
    "rust-crate": "cargo", "php-composer": "composer", "dotnet": "nuget", "conda": "conda", "hex": "hex",
    "dart-pub": "pub", "swift": "swift", "cocoapods": "cocoapods", "conan": "conan", "hackage": "hackage",
}
LANGUAGES = {
    "python": "pypi", "javascript": "npm", "java": "maven", "go": "golang", "ruby": "gem", "R": "cran",
    "rust": "cargo", "php": "composer", "dotnet": "nuget", "dart": "pub", "swift": "swift", "elixir": "hex",
    "erlang": "hex", "haskell": "hackage", "cpp": "conan",
}
# Where Syft (Grype's cataloguer) locates an OS package: its package database.
OS_LOCATIONS = {
    "deb": ("/var/lib/dpkg/status",), "rpm": ("/var/lib/rpm/rpmdb.sqlite",), "apk": ("/lib/apk/db/installed",)
}


@dataclass(frozen=True)
class GrypeRule:
    """The matchable part of one Grype ignore rule."""

    vulnerability: str = ""
    fix_state: str = ""
    namespace: str = ""
    name: str = ""
    version: str = ""
    purl_type: str = ""  # from package.type or package.language
    location: str = ""
    include_aliases: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The rule's fields in Grype's names (package type as the PURL type it maps to)."""
        pkg = {k: v for k, v in (("name", self.name), ("version", self.version), ("purl_type", self.purl_type),
                                 ("location", self.location)) if v}
        rule = {k: v for k, v in (("vulnerability", self.vulnerability), ("fix-state", self.fix_state),
                                  ("namespace", self.namespace)) if v}
        return {**rule, **({"package": pkg} if pkg else {}), "include-aliases": self.include_aliases}

    def describe(self) -> str:
        """A short label for reports: the ID, or the fields of an ID-less rule."""
        parts = [f"{k}={v}" for k, v in (("fix-state", self.fix_state), ("namespace", self.namespace),
                 ("package", self.name), ("version", self.version), ("type", self.purl_type),
                 ("location", self.location)) if v]
        return self.vulnerability or "(" + " ".join(parts) + ")"

    def matches(self, f: Any) -> bool:
        """Grype's rule semantics on an ap_build.scan.policy.Finding: every named field matches."""
        if f.kind != "vulnerability":
            return False
        if self.vulnerability and self.vulnerability != f.id and not (
            self.include_aliases and self.vulnerability in f.aliases
        ):
            return False
        if self.fix_state and (f.status or "unknown") not in FIX_STATES[self.fix_state]:
            return False
        if self.namespace and self.namespace != f.namespace:
            return False
        if self.name and not _name_matches(self.name, f.package):
            return False
        if self.version and self.version != f.installed_version:
            return False
        if self.purl_type and self.purl_type != _purl_type(f.purl):
            return False
        return not self.location or any(_location_matches(self.location, p) for p in _locations(f))


@lru_cache(maxsize=4096)
def _name_matcher(name: str) -> NameMatcher:
    """The compiled `package.name` (checked when the rule was parsed: a refused pattern never gets here)."""
    try:
        return compile_name(name)
    except PatternError:
        return NameMatcher(name, literal=True, program=None)


@lru_cache(maxsize=1 << 16)
def _name_matches(name: str, package: str) -> bool:
    """Packages repeat across a scan's findings: each (rule name, package) is matched once (RE2 costs ~10 us
    a call through its Python binding)."""
    return _name_matcher(name)(package)


@lru_cache(maxsize=1 << 16)
def _location_matches(location: str, path: str) -> bool:
    return match_v2(location, path)


def _purl_type(purl: str) -> str:
    return purl[4:].split("/", 1)[0] if purl.startswith("pkg:") else ""


def _locations(f: Any) -> tuple[str, ...]:
    if f.path:
        return ("/" + f.path.lstrip("/"),)
    return OS_LOCATIONS.get(_purl_type(f.purl), ())


def parse_grype(text: str, source: str) -> tuple[list[IgnoreEntry], list[Problem]]:
    """Parse a Grype config's `ignore:` rules into ignore entries with `file:line` problems (pure)."""
    try:
        docs = load_all(text)
    except YamlError as exc:
        return [], [Problem(source, exc.line, exc.message)]
    entries: list[IgnoreEntry] = []
    problems: list[Problem] = []
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, Map):
            problems.append(Problem(source, 1, "expected a Grype configuration: a mapping with an `ignore:` list"))
            continue
        rules = doc.get("ignore")
        if rules is None:
            continue
        if not isinstance(rules, Seq):
            problems.append(Problem(source, doc.lines["ignore"], "`ignore` must be a list of rules"))
            continue
        for item, line in zip(rules, rules.lines, strict=True):
            entry = parse_rule(item, source, line, problems)
            if entry is not None:
                entries.append(entry)
    return entries, problems


def parse_rule(item: Any, source: str, line: int, problems: list[Problem]) -> IgnoreEntry | None:
    """One rule -> an IgnoreEntry carrying a GrypeRule, or None (and a problem) when it must ignore nothing."""
    def bad(message: str, at: int | None = None) -> None:
        problems.append(Problem(source, at or line, f"{label}: {message} (the rule ignores nothing)"))

    if not isinstance(item, Map):
        problems.append(Problem(source, line, "a Grype ignore rule must be a mapping, e.g. `- vulnerability: CVE-...`"))
        return None
    label = str(item.get("vulnerability") or "rule")[:80]
    unknown = [k for k in item if k not in RULE_KEYS]
    if unknown:
        bad(f"unknown field(s) {', '.join(unknown)}; Grype's fields are {', '.join(RULE_KEYS)}", item.lines[unknown[0]])
        return None
    pkg = item.get("package")
    if pkg is not None and not isinstance(pkg, Map):
        bad("`package` must be a mapping of " + ", ".join(PACKAGE_KEYS), item.lines["package"])
        return None
    pkg = pkg or Map()
    unknown = [k for k in pkg if k not in PACKAGE_KEYS]
    if unknown:
        bad(f"unknown package field(s) {', '.join(unknown)}; allowed: {', '.join(PACKAGE_KEYS)}", pkg.lines[unknown[0]])
        return None
    values: dict[str, str] = {}
    for key, where, holder in [*((k, k, item) for k in RULE_KEYS if k not in ("package", "include-aliases")),
                               *((k, f"package.{k}", pkg) for k in PACKAGE_KEYS)]:
        v = holder.get(key)
        if v is None:
            continue
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            bad(f"`{where}` must be a single value", holder.lines[key])
            return None
        values[where] = v if isinstance(v, str) and where == "package.name" else str(v).strip()
    for where, why in UNMAPPABLE.items():
        if values.get(where):
            holder = pkg if where.startswith("package.") else item
            bad(f"`{where}` cannot be applied to Trivy's findings: {why}", holder.lines[where.split(".")[-1]])
            return None
    aliases = item.get("include-aliases", False)
    if not isinstance(aliases, bool):
        bad("`include-aliases` must be true or false", item.lines["include-aliases"])
        return None
    fix_state = values.get("fix-state", "")
    if fix_state and fix_state not in FIX_STATES:
        bad(f"unknown fix-state {fix_state!r}; Grype's are {', '.join(FIX_STATES)}", item.lines["fix-state"])
        return None
    purl_type = ""
    for key, table in (("type", TYPES), ("language", LANGUAGES)):
        if v := values.get(f"package.{key}", ""):
            if v not in table:
                bad(f"package {key} {v!r} has no Trivy equivalent; known: {', '.join(table)}", pkg.lines[key])
                return None
            if purl_type and purl_type != table[v]:
                bad(f"package type and language disagree ({purl_type} vs {table[v]}): it matches nothing")
                return None
            purl_type = table[v]
    name = values.get("package.name", "")
    if name:
        try:
            compile_name(name)
        except PatternError as exc:
            bad(f"package name {_short(name)} is a regular expression Grype refuses: {exc}", pkg.lines["name"])
            return None
    if location := values.get("package.location", ""):
        try:
            check_v2(location)
        except GlobError as exc:
            bad(f"package location {_short(location)} is a glob Grype cannot use: {exc}", pkg.lines["location"])
            return None
    expires: dt.date | None = None
    if "expires-at" in values:
        expires = _expiry(item["expires-at"])
        if expires is None:
            bad(f"unreadable expires-at {_short(values['expires-at'])}; write a real date YYYY-MM-DD "
                "(or an RFC 3339 time) before the year 10000", item.lines["expires-at"])
            return None
    rule = GrypeRule(
        vulnerability=values.get("vulnerability", ""), fix_state=fix_state, namespace=values.get("namespace", ""),
        name=name, version=values.get("package.version", ""), purl_type=purl_type,
        location=values.get("package.location", ""), include_aliases=aliases,
    )
    if rule == GrypeRule(include_aliases=aliases):
        bad("names no criterion (vulnerability, fix-state, namespace or package); Grype applies it to nothing")
        return None
    if rule.vulnerability and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:/+-]*", rule.vulnerability):
        bad(f"{rule.vulnerability!r} is not a vulnerability ID", item.lines["vulnerability"])
        return None
    return IgnoreEntry(
        id=rule.describe(), source=source, line=line, expires=expires, statement=values.get("reason", ""),
        rule=rule,
    )


def _expiry(raw: Any) -> dt.date | None:
    """`2026-08-11` or an RFC 3339 timestamp (its UTC date: expiring at that day's start never extends it)."""
    text = str(raw).strip()
    if date := parse_date(text):
        return date
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is not None:
        try:
            stamp = stamp.astimezone(dt.timezone.utc)  # noqa: UP017 (py3.10 style kept across the package)
        except OverflowError:  # 9999-12-31T23:00:00-05:00 is in the year 10000
            return None
    return stamp.date()


def _short(text: str, limit: int = 80) -> str:
    """`text` quoted for a problem message, cut to `limit` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")
