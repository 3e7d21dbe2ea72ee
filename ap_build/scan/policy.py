"""The gate's policy: Trivy's JSON report + ignore entries + options -> a verdict (pure).

Trivy runs ONCE with no filters; every finding is kept and marked:
  blocking      fails the gate (exit 1)
  ignored       matched an active ignore entry
  informational shown, but outside the gate (severity, unfixed, package type)
Secrets always block unless ignored by their rule ID. Expired ignore entries ignore nothing (the
finding blocks again); entries matching no finding are reported as stale; entries expiring within
`warn_expiry_days` are reported as expiring.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ap_build.scan.doublestar import GlobError, check_v4, match_v4
from ap_build.scan.entries import IgnoreEntry, Problem

SEVERITY_ORDER = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
VULN_TYPES = ("os", "library", "all")
BLOCKING, IGNORED, INFORMATIONAL = "blocking", "ignored", "informational"
SECRET_RULES_URL = "https://trivy.dev/latest/docs/scanner/secret/#builtin-rules"


@dataclass(frozen=True)
class Policy:
    """What blocks. Defaults = the platform's gate: HIGH/CRITICAL with a fix, OS and language packages."""

    severities: frozenset[str] = frozenset({"HIGH", "CRITICAL"})
    include_unfixed: bool = False
    vuln_type: str = "all"
    warn_expiry_days: int = 14
    today: dt.date = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).date())  # noqa: UP017

    def to_dict(self) -> dict[str, Any]:
        return {
            "severities": [s for s in SEVERITY_ORDER if s in self.severities],
            "include_unfixed": self.include_unfixed,
            "vuln_type": self.vuln_type,
            "warn_expiry_days": self.warn_expiry_days,
            "today": self.today.isoformat(),
            "secrets_block": True,
        }


@dataclass
class Finding:
    """One vulnerability or secret, with the gate's decision."""

    kind: str  # "vulnerability" | "secret"
    id: str
    severity: str
    target: str
    result_class: str  # Trivy's Class: os-pkgs, lang-pkgs, secret
    package: str = ""
    installed_version: str = ""
    fixed_version: str = ""
    status: str = ""
    title: str = ""
    url: str = ""
    purl: str = ""
    path: str = ""
    pkg_type: str = ""
    cvss_score: float | None = None
    verdict: str = INFORMATIONAL
    reason: str = ""
    ignored_by: str | None = None
    aliases: tuple[str, ...] = ()  # Trivy's VendorIDs (DSA/DLA/GHSA IDs of the same advisory)
    namespace: str = ""  # the advisory's source as Grype names it, e.g. debian:distro:debian:12
    vex: dict[str, str] | None = None  # the VEX statement that settled it: status, justification, source

    @property
    def fixable(self) -> bool:
        return bool(self.fixed_version) or self.status == "fixed"

    @property
    def location(self) -> str:
        return self.path or self.target

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "severity": self.severity,
            "package": self.package,
            "installed_version": self.installed_version,
            "fixed_version": self.fixed_version,
            "status": self.status,
            "fixable": self.fixable,
            "title": self.title,
            "url": self.url,
            "purl": self.purl,
            "target": self.target,
            "class": self.result_class,
            "path": self.path,
            "pkg_type": self.pkg_type,
            "cvss_score": self.cvss_score,
            "verdict": self.verdict,
            "reason": self.reason,
            "ignored_by": self.ignored_by,
            "aliases": list(self.aliases),
            "vex": self.vex,
        }


@dataclass
class IgnoreState:
    """An ignore entry's hygiene: active, expiring (within N days), expired or stale (matches nothing)."""

    entry: IgnoreEntry
    state: str
    matched: int
    days_left: int | None

    def to_dict(self) -> dict[str, Any]:
        e = self.entry
        return {
            "id": e.id,
            "source": e.source,
            "line": e.line,
            "section": e.section,
            "expires": e.expires.isoformat() if e.expires else None,
            "days_left": self.days_left,
            "state": self.state,
            "matched": self.matched,
            "statement": e.statement,
            "paths": list(e.paths),
            "purls": list(e.purls),
            "format": e.format,
            "rule": e.rule.to_dict() if e.rule is not None else None,
        }


@dataclass
class Verdict:
    passed: bool
    findings: list[Finding]
    ignores: list[IgnoreState]
    problems: list[Problem]
    policy: Policy

    def count(self, verdict: str) -> int:
        return sum(1 for f in self.findings if f.verdict == verdict)

    def counts(self) -> dict[str, Any]:
        by_sev: dict[str, Counter[str]] = {s: Counter() for s in SEVERITY_ORDER}
        for f in self.findings:
            by_sev.setdefault(f.severity, Counter())[f.verdict] += 1
        states = Counter(i.state for i in self.ignores)
        return {
            "total": len(self.findings),
            BLOCKING: self.count(BLOCKING),
            IGNORED: self.count(IGNORED),
            INFORMATIONAL: self.count(INFORMATIONAL),
            "by_severity": {s: {v: c[v] for v in (BLOCKING, IGNORED, INFORMATIONAL)} for s, c in by_sev.items()},
            "secrets": sum(1 for f in self.findings if f.kind == "secret"),
            "ignores": {s: states[s] for s in ("active", "expiring", "expired", "stale")},
            "problems": len(self.problems),
        }


def _cvss(v: dict[str, Any]) -> float | None:
    scores = [c.get("V3Score") or c.get("V40Score") or c.get("V2Score") for c in (v.get("CVSS") or {}).values()]
    scores = [float(s) for s in scores if s]
    return max(scores) if scores else None


_LANGUAGE = {"pypi": "python", "npm": "javascript", "maven": "java", "golang": "go", "gem": "ruby", "cran": "R",
             "cargo": "rust", "composer": "php", "nuget": "dotnet"}


def _namespace(v: dict[str, Any], purl: str, os_info: dict[str, Any]) -> str:
    """Grype's name for the advisory's source (`debian:distro:debian:12`, `github:language:python`)."""
    source = ((v.get("DataSource") or {}).get("ID") or "").lower()
    family, version = str(os_info.get("Family") or ""), str(os_info.get("Name") or "")
    if source == "ghsa":
        lang = _LANGUAGE.get(purl[4:].split("/", 1)[0] if purl.startswith("pkg:") else "", "")
        return f"github:language:{lang}" if lang else ""
    if source and source == family:
        release = version.split(".")[0] if family in ("debian", "redhat", "rocky", "alma") else version
        return f"{family}:distro:{family}:{release}"
    return ""


def _vuln_finding(v: dict[str, Any], target: str, cls: str, typ: str, os_info: dict[str, Any]) -> Finding:
    purl = (v.get("PkgIdentifier") or {}).get("PURL", "")
    return Finding(
        kind="vulnerability",
        id=v.get("VulnerabilityID", "?"),
        severity=(v.get("Severity") or "UNKNOWN").upper(),
        target=target,
        result_class=cls,
        package=v.get("PkgName", ""),
        installed_version=v.get("InstalledVersion", ""),
        fixed_version=v.get("FixedVersion") or "",
        status=v.get("Status") or "",
        title=v.get("Title") or "",
        url=v.get("PrimaryURL") or "",
        purl=purl,
        path=v.get("PkgPath") or "",
        pkg_type=typ,
        cvss_score=_cvss(v),
        aliases=tuple(v.get("VendorIDs") or ()),
        namespace=_namespace(v, purl, os_info),
    )


def findings_from_report(report: dict[str, Any]) -> list[Finding]:
    """Flatten Trivy's JSON report (SchemaVersion 2) into findings (pure).

    Findings a VEX statement settled (Trivy's `ExperimentalModifiedFindings`, with `--show-suppressed`)
    are kept, already ignored, naming the statement's status and justification.
    """
    out: list[Finding] = []
    os_info = (report.get("Metadata") or {}).get("OS") or {}
    for res in report.get("Results") or []:
        target, cls, typ = res.get("Target", ""), res.get("Class", ""), res.get("Type", "")
        for m in res.get("ExperimentalModifiedFindings") or []:
            if m.get("Type") != "vulnerability" or not isinstance(m.get("Finding"), dict):
                continue
            f = _vuln_finding(m["Finding"], target, cls, typ, os_info)
            status, why = m.get("Status") or "", m.get("Statement") or ""
            f.vex = {"status": status, "justification": why, "source": m.get("Source") or "VEX"}
            f.verdict, f.ignored_by = IGNORED, f"vex:{f.vex['source']}"
            f.reason = f"settled by VEX: {status}" + (f" ({why})" if why else "")
            out.append(f)
        for v in res.get("Vulnerabilities") or []:
            out.append(_vuln_finding(v, target, cls, typ, os_info))
        for s in res.get("Secrets") or []:
            out.append(
                Finding(
                    kind="secret",
                    id=s.get("RuleID", "?"),
                    severity=(s.get("Severity") or "UNKNOWN").upper(),
                    target=target,
                    result_class=cls or "secret",
                    package=s.get("Category", ""),
                    title=s.get("Title") or "",
                    path=target,
                    url=SECRET_RULES_URL,
                    installed_version=f"line {s.get('StartLine', '?')}",
                    status="secret",
                )
            )
    return out


def matches(entry: IgnoreEntry, f: Finding) -> bool:
    """Does ignore `entry` cover finding `f` (whatever its expiry)?"""
    if entry.rule is not None:  # a Grype rule: Grype's semantics (ap_build.scan.grype)
        return bool(entry.rule.matches(f))
    if entry.id != f.id:
        return False
    if (entry.section == "secrets") != (f.kind == "secret") and entry.source.endswith((".yaml", ".yml")):
        return False
    if entry.paths and not any(  # doublestar globs, as Trivy's: `*` stays within one directory
        _glob(p, loc) or _glob(p.lstrip("/"), loc) for p in entry.paths for loc in (f.path, f.target) if loc
    ):
        return False
    return not entry.purls or any(purl_matches(p, f.purl) for p in entry.purls)


def _glob(pattern: str, path: str) -> bool:
    """Trivy's doublestar v4 match; a pattern it would refuse (reported when parsed) matches nothing."""
    try:
        check_v4(pattern)
    except GlobError:
        return False
    return match_v4(pattern, path)


def _purl_parts(purl: str) -> tuple[str, str, str, dict[str, str]]:
    from urllib.parse import unquote

    body, _, quals = purl.partition("?")
    body = body.split("#", 1)[0]
    path, _, version = body.partition("@")
    qualifiers = dict(q.split("=", 1) for q in quals.split("&") if "=" in q)
    return unquote(path.lower()), unquote(version), "", {k: unquote(v) for k, v in qualifiers.items()}


def purl_matches(pattern: str, purl: str) -> bool:
    """Trivy's PURL match for ignore entries: same type/namespace/name; the version and qualifiers only
    where the pattern names them (`pkg:pypi/urllib3` matches every urllib3)."""
    if not purl.startswith("pkg:") or not pattern.startswith("pkg:"):
        return False
    p_path, p_version, _, p_quals = _purl_parts(pattern)
    f_path, f_version, _, f_quals = _purl_parts(purl)
    if p_path != f_path or (p_version and p_version != f_version):
        return False
    return all(f_quals.get(k) == v for k, v in p_quals.items())


def _in_gate(f: Finding, policy: Policy) -> tuple[bool, str]:
    """Would this finding block if nothing ignored it? (decision, reason)"""
    if f.kind == "secret":
        return True, "secret in the image"
    if policy.vuln_type == "os" and f.result_class != "os-pkgs":
        return False, "language package (gate: --vuln-type os)"
    if policy.vuln_type == "library" and f.result_class == "os-pkgs":
        return False, "OS package (gate: --vuln-type library)"
    if f.severity not in policy.severities:
        return False, f"severity {f.severity} outside the gate"
    if not f.fixable and not policy.include_unfixed:
        return False, f"no fix available ({f.status or 'unfixed'}); gated with --include-unfixed"
    return True, f"{f.severity} " + ("with a fix" if f.fixable else "without a fix (--include-unfixed)")


def evaluate(
    report: dict[str, Any],
    ignores: list[IgnoreEntry],
    policy: Policy,
    problems: list[Problem] | None = None,
) -> Verdict:
    """Apply `policy` and `ignores` to Trivy's report: every finding marked, ignore hygiene computed (pure)."""
    findings = findings_from_report(report)
    matched: Counter[int] = Counter()
    by_id: dict[str, list[int]] = {}  # entries by ID: linear in findings + entries, whatever the list's size
    anywhere: list[int] = []  # Grype rules that name no ID (a package or fix-state rule) are tried on every finding
    for i, e in enumerate(ignores):
        key = e.rule.vulnerability if e.rule is not None else e.id
        if key:
            by_id.setdefault(key, []).append(i)
        else:
            anywhere.append(i)
    for f in findings:
        if f.vex is not None:  # settled by a VEX statement in Trivy: already ignored
            continue
        gated, reason = _in_gate(f, policy)
        candidates = by_id.get(f.id, [])
        if anywhere or f.aliases:  # aliases: rules with include-aliases may name another ID of the advisory
            candidates = sorted({*candidates, *anywhere, *(i for a in f.aliases for i in by_id.get(a, ()))})
        hits = [i for i in candidates if matches(ignores[i], f)]
        for i in hits:
            matched[i] += 1
        active = [ignores[i] for i in hits if not _expired(ignores[i], policy.today)]
        expired = [ignores[i] for i in hits if _expired(ignores[i], policy.today)]
        if active:
            f.verdict, f.ignored_by = IGNORED, active[0].where
            f.reason = f"ignored by {active[0].where}" + (f" ({active[0].statement})" if active[0].statement else "")
        elif gated:
            f.verdict = BLOCKING
            f.reason = reason
            if expired:
                f.reason += f"; ignore {expired[0].where} expired on {expired[0].expires}"
        else:
            f.verdict, f.reason = INFORMATIONAL, reason
    states = [_state(e, matched[i], policy) for i, e in enumerate(ignores)]
    findings.sort(key=_sort_key)
    passed = not any(f.verdict == BLOCKING for f in findings)
    return Verdict(passed, findings, states, list(problems or []), policy)


def _expired(e: IgnoreEntry, today: dt.date) -> bool:
    return e.expires is not None and today >= e.expires


def _state(e: IgnoreEntry, matched: int, policy: Policy) -> IgnoreState:
    days_left = (e.expires - policy.today).days if e.expires else None
    if _expired(e, policy.today):
        state = "expired"
    elif matched == 0:
        state = "stale"
    elif days_left is not None and days_left <= policy.warn_expiry_days:
        state = "expiring"
    else:
        state = "active"
    return IgnoreState(e, state, matched, days_left)


def _sort_key(f: Finding) -> tuple[int, int, str, str]:
    verdict_rank = {BLOCKING: 0, IGNORED: 1, INFORMATIONAL: 2}[f.verdict]
    sev_rank = SEVERITY_ORDER.index(f.severity) if f.severity in SEVERITY_ORDER else len(SEVERITY_ORDER)
    return (sev_rank, verdict_rank, f.id, f.package)


def parse_severities(text: str) -> frozenset[str]:
    """`HIGH,CRITICAL` -> frozenset; ValueError naming the bad value."""
    values = {s.strip().upper() for s in text.split(",") if s.strip()}
    bad = sorted(values - set(SEVERITY_ORDER))
    if bad or not values:
        raise ValueError(
            f"unknown severity {', '.join(bad) or '(empty)'}; use a comma list of {','.join(SEVERITY_ORDER)}"
        )
    return frozenset(values)
