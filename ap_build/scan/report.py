"""Renderers for a scan verdict (pure): ap-build JSON, SARIF 2.1.0, markdown, and a Rich table.

The JSON document is ap-build's own stable schema (`schema_version` 1, documented in docs/scan.md):
additions are backwards compatible; a breaking change bumps `schema_version`.
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import quote

from ap_build.scan.policy import BLOCKING, IGNORED, INFORMATIONAL, SEVERITY_ORDER, Finding, Verdict

SCHEMA_VERSION = 1
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# GitHub code scanning's security-severity bands (critical >= 9.0, high >= 7.0, medium >= 4.0, low > 0).
SEVERITY_SCORE = {"CRITICAL": 9.5, "HIGH": 8.0, "MEDIUM": 5.5, "LOW": 2.0, "UNKNOWN": 0.0}
_ICON = {BLOCKING: "✖", IGNORED: "~", INFORMATIONAL: "·"}


def to_json(verdict: Verdict, artifact: dict[str, Any]) -> dict[str, Any]:
    """ap-build's JSON report: verdict, counts, every finding with its decision, ignore hygiene, problems."""
    return {
        "schema_version": SCHEMA_VERSION,
        "artifact": artifact,
        "verdict": "passed" if verdict.passed else "failed",
        "passed": verdict.passed,
        "policy": verdict.policy.to_dict(),
        "counts": verdict.counts(),
        "findings": [f.to_dict() for f in verdict.findings],
        "ignores": [i.to_dict() for i in verdict.ignores],
        "problems": [{"source": p.source, "line": p.line, "message": p.message} for p in verdict.problems],
    }


def _security_severity(f: Finding) -> str:
    score = f.cvss_score if f.cvss_score is not None else SEVERITY_SCORE.get(f.severity, 0.0)
    # Keep the band consistent with the severity Trivy assigned (a vendor may rate above NVD's score).
    lo = {"CRITICAL": 9.0, "HIGH": 7.0, "MEDIUM": 4.0, "LOW": 0.1}.get(f.severity, 0.0)
    hi = {"HIGH": 8.9, "MEDIUM": 6.9, "LOW": 3.9, "UNKNOWN": 0.0}.get(f.severity, 10.0)
    return f"{min(max(score, lo), hi):.1f}"


def _level(f: Finding) -> str:
    if f.verdict == BLOCKING:
        return "error"
    return "warning" if f.severity in ("CRITICAL", "HIGH") else "note"


def _help_uri(f: Finding) -> str:
    return f.url or f"https://avd.aquasec.com/nvd/{f.id.lower()}"


def _uri(location: str) -> str:
    """A relative URI reference for a path in the image (or the image name): no leading /, spaces escaped."""
    return quote(location.lstrip("/"), safe="/:@._-~+=,") or "image"


def to_sarif(verdict: Verdict, artifact: dict[str, Any], *, tool_version: str = "") -> dict[str, Any]:
    """SARIF 2.1.0 for GitHub code scanning: one rule per ID (help URI, security-severity), one result per finding.

    Ignored findings carry an external suppression with the ignore entry as justification.
    """
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    name = artifact.get("name") or "image"
    for f in verdict.findings:
        if f.id not in index:
            index[f.id] = len(rules)
            text = f.title or f.id
            rules.append(
                {
                    "id": f.id,
                    "name": "Secret"
                    if f.kind == "secret"
                    else "OsPackageVulnerability"
                    if f.result_class == "os-pkgs"
                    else "LanguageSpecificPackageVulnerability",
                    "shortDescription": {"text": text[:1000]},
                    "fullDescription": {"text": f"{f.id}: {text}"},
                    "helpUri": _help_uri(f),
                    "help": {
                        "text": f"{f.id} ({f.severity}) in {f.package}. See {_help_uri(f)}",
                        "markdown": f"**{md(f.id)}** ({md(f.severity)}) in {md_code(f.package)}. "
                                    + md_link("Details", _help_uri(f)),
                    },
                    "defaultConfiguration": {"level": "error" if f.severity in ("CRITICAL", "HIGH") else "warning"},
                    "properties": {
                        "security-severity": _security_severity(f),
                        "precision": "very-high",
                        "tags": ["security", f.kind, f.severity],
                    },
                }
            )
        else:
            rule = rules[index[f.id]]
            if float(_security_severity(f)) > float(rule["properties"]["security-severity"]):
                rule["properties"]["security-severity"] = _security_severity(f)
        if f.kind == "secret":
            message = (
                f"{f.severity} secret ({f.id}: {f.title}) in {f.path} {f.installed_version}. Verdict: {f.verdict}."
            )
        else:
            fixed = f.fixed_version or "no fix available"
            message = (
                f"{f.id} ({f.severity}) in package {f.package} {f.installed_version} (fixed: {fixed}) "
                f"in image {name}. Verdict: {f.verdict} ({f.reason})."
            )
        result: dict[str, Any] = {
            "ruleId": f.id,
            "ruleIndex": index[f.id],
            "level": _level(f),
            "message": {"text": message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(f.path or name), "uriBaseId": "ROOTPATH"},
                        "region": {"startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1},
                    },
                    "message": {"text": f"{name}: {f.location}"},
                }
            ],
            "properties": {
                "verdict": f.verdict,
                "package": f.package,
                "installedVersion": f.installed_version,
                "fixedVersion": f.fixed_version,
                "severity": f.severity,
            },
        }
        if f.purl:
            result["partialFingerprints"] = {"purl": f.purl}
        if f.verdict == IGNORED:
            result["suppressions"] = [{"kind": "external", "status": "accepted", "justification": f.reason}]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "ap-build scan (Trivy)",
                        "informationUri": "https://github.com/aquasecurity/trivy",
                        "version": tool_version or "0",
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {"ROOTPATH": {"uri": "file:///"}},
                "results": results,
                "properties": {"verdict": "passed" if verdict.passed else "failed", "artifact": name},
            }
        ],
    }


_MD_PUNCT = re.compile(r"([\\`*_{}\[\]()#!|~@]|(?<=www)\.|:(?=//))", re.IGNORECASE)
_SAFE_URL = re.compile(r"https?://[A-Za-z0-9._~:/?#@!$&'*+,;=%-]+")


def _visible(text: object) -> str:
    """One line, control characters and undecodable bytes (surrogates) shown as escapes."""
    from ap_build.ui import printable

    return printable(text).encode("utf-8", "backslashreplace").decode("utf-8")


def md(text: object) -> str:
    """Any user-controlled string as inert markdown text on one line: control characters shown as escapes
    (never obeyed), HTML as entities, and every character that could open a heading, a table cell, a link,
    an autolink, a mention, an issue reference, emphasis or a code span backslash-escaped (the text never
    starts a line: newlines are escapes, so `-`, `+` and `.` need no escape)."""

    return _MD_PUNCT.sub(r"\\\1", html.escape(_visible(text), quote=False))


def md_code(text: object) -> str:
    """A user-controlled string as an inline code span (outside tables: GFM splits a table row at a `|` even
    inside a code span, so cells use `md`): nothing inside is interpreted, and the fence is longer than any
    run of backticks in it."""
    shown = _visible(text)
    longest = max((len(run) for run in re.findall(r"`+", shown)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {shown} {fence}" if longest or shown[:1] == " " or shown[-1:] == " " else f"`{shown}`"


def md_link(label: str, url: str) -> str:
    """A link only to a plain http(s) URL (Trivy's advisory pages); anything else is shown as text."""
    return f"[{md(label)}]({url})" if _SAFE_URL.fullmatch(url) else md(label)


_md_cell = md


def to_markdown(verdict: Verdict, artifact: dict[str, Any], *, max_rows: int = 100) -> str:
    """A pull-request comment / $GITHUB_STEP_SUMMARY body."""
    name = artifact.get("name") or "image"
    c = verdict.counts()
    head = "✅ passed" if verdict.passed else "❌ failed"
    lines = [f"### ap-build scan {head}: {md_code(name)}", ""]
    lines.append(
        f"**{c[BLOCKING]} blocking**, {c[IGNORED]} ignored, {c[INFORMATIONAL]} informational "
        f"(gate: {', '.join(verdict.policy.to_dict()['severities'])}"
        f"{'' if verdict.policy.include_unfixed else ' with a fix'}, vuln type {verdict.policy.vuln_type}"
        ", secrets always)."
    )
    lines += ["", "| Severity | Blocking | Ignored | Informational |", "|---|---:|---:|---:|"]
    for sev in SEVERITY_ORDER:
        row = c["by_severity"].get(sev, {})
        lines.append(f"| {sev} | {row.get(BLOCKING, 0)} | {row.get(IGNORED, 0)} | {row.get(INFORMATIONAL, 0)} |")

    def table(title: str, rows: list[Finding], open_: bool) -> None:
        if not rows:
            return
        lines.extend(["", f"<details{' open' if open_ else ''}><summary>{title} ({len(rows)})</summary>", ""])
        lines.append("| Severity | ID | Package | Installed | Fixed | Why |")
        lines.append("|---|---|---|---|---|---|")
        for f in rows[:max_rows]:
            link = md_link(f.id, _help_uri(f))
            lines.append(
                f"| {md(f.severity)} | {link} | {_md_cell(f.package or f.path)} | "
                f"{_md_cell(f.installed_version)} | {_md_cell(f.fixed_version or '-')} | {_md_cell(f.reason)} |"
            )
        if len(rows) > max_rows:
            lines.append(f"| | … {len(rows) - max_rows} more (see the JSON or SARIF report) | | | | |")
        lines.extend(["", "</details>"])

    table("Blocking", [f for f in verdict.findings if f.verdict == BLOCKING], True)
    table("Ignored", [f for f in verdict.findings if f.verdict == IGNORED], False)
    table("Informational", [f for f in verdict.findings if f.verdict == INFORMATIONAL], False)
    sources = artifact.get("ignore_sources") or []
    lines.extend(["", f"Ignore lists: {', '.join(md_code(x) for x in sources) if sources else 'none'}."])
    hygiene = [i for i in verdict.ignores if i.state != "active"]
    if hygiene or verdict.problems:
        lines.extend(["", "#### Ignore list hygiene", ""])
        for i in hygiene:
            note = _state_note(i.state, i.days_left)
            lines.append(f"- **{i.state}** {md_code(i.entry.id)} ({md(i.entry.where)}){note}")
        for p in verdict.problems:
            lines.append(f"- **malformed** {md(p.where)}: {md(p.message)}")
    return "\n".join(lines) + "\n"


def _state_note(state: str, days_left: int | None) -> str:
    return {
        "stale": ": matches nothing in this image; remove it",
        "expired": ": expired, the finding blocks again",
        "expiring": f": expires in {days_left} day(s)",
    }.get(state, "")


TABLE_HEADERS = ("", "ID", "Package", "Installed", "Fixed", "Verdict", "Link")
FOLDED = ("Package", "Installed", "Fixed", "Link")  # the columns that fold on a narrow terminal


def render_table(verdict: Verdict, artifact: dict[str, Any], console: Any, footer: tuple[str, ...] = ()) -> None:
    """The human view: findings grouped by severity, then ignore hygiene, then the verdict line.

    On a terminal the table fits the screen (long cells fold). Elsewhere (a file, a CI log) it is printed
    at its natural width with every column's width known up front: nothing is folded or cut, and Rich does
    not measure every cell, which cost 1 ms a finding (most of the gate's time on a big report).
    """
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ap_build.ui import printable

    name = artifact.get("name") or "image"
    styles = {BLOCKING: "bold red", IGNORED: "dim", INFORMATIONAL: ""}
    rows: list[tuple[tuple[str, ...], str | None]] = []  # (cells, row style); None: a severity heading
    for sev in SEVERITY_ORDER:
        found = [f for f in verdict.findings if f.severity == sev]
        if found:
            rows.append(((sev, str(len(found)), "", "", "", "", ""), None))
            rows += [
                (tuple(map(printable, (_ICON[f.verdict], f.id, f.package or f.path, f.installed_version,
                                       f.fixed_version or "-", f.verdict, _help_uri(f)))), styles[f.verdict])
                for f in found
            ]
    if rows:
        fit = console.is_terminal
        every = [TABLE_HEADERS, *(cells for cells, _ in rows)]
        widths = [max(cell_len(cells[i]) for cells in every) for i in range(len(TABLE_HEADERS))]
        table = Table(title=Text(printable(f"Findings in {name}")), show_lines=False, expand=False)
        for header, width in zip(TABLE_HEADERS, widths, strict=True):
            folds = fit and header in FOLDED
            table.add_column(header, width=None if fit else width, no_wrap=not folds,
                             overflow="fold" if folds else "ellipsis")
        for cells, style in rows:  # Text cells: what Trivy reports is data, never Rich markup
            if style is None:
                table.add_section()
                table.add_row(*(Text(c, style="bold") for c in cells))
            else:
                table.add_row(*map(Text, cells), style=style)
        natural = sum(widths) + 3 * len(widths) + 1  # cells, padding and rules
        table_console = console if fit else Console(file=console.file, width=natural, color_system=console.color_system,
                                                    markup=False)
        table_console.print(table)
    for i in verdict.ignores:  # Text pieces: ignore lines and Trivy's data are never Rich markup
        if i.state != "active":
            line = f" {i.entry.id} ({i.entry.where}){_state_note(i.state, i.days_left)}"
            console.print(Text.assemble((f"ignore {i.state}:", "yellow"), printable(line)))
    for p in verdict.problems:
        console.print(Text.assemble(("malformed ignore:", "yellow"), printable(f" {p.where}: {p.message}")))
    for f in verdict.findings:
        if f.vex is not None:
            why = f"{f.vex['status']}" + (f": {f.vex['justification']}" if f.vex["justification"] else "")
            console.print(Text.assemble(("settled by VEX:", "dim"), printable(f" {f.id} {f.package} ({why})")))
    sources = artifact.get("ignore_sources") or []
    console.print(Text(printable(f"ignore lists: {', '.join(sources) if sources else 'none'}"), style="dim"))
    for line in footer:  # e.g. `scan --compare`'s summary: before the verdict, which stays the last line
        console.print(Text(printable(line)))
    c = verdict.counts()
    summary = f"{c[BLOCKING]} blocking, {c[IGNORED]} ignored, {c[INFORMATIONAL]} informational"
    if verdict.passed:
        console.print(Text.assemble(("scan passed", "bold green"), printable(f" {name}: {summary}")))
    else:
        console.print(Text.assemble(("scan failed", "bold red"), printable(f" {name}: {summary}")))
