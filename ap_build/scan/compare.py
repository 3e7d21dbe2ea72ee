"""Two scans compared (pure): findings fixed, introduced, unchanged; packages added, removed, changed.

For a pull request that bumps a base image (or changes a user image): `ap-build scan NEW --compare OLD`
scans each image once (with the package inventory) and diffs the two. A finding is the same finding when
its kind, ID, package and location are (a version bump that does not fix it leaves it unchanged); a
package is the same package by type and name, its version may change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ap_build.scan.policy import SEVERITY_ORDER, Finding


@dataclass
class Comparison:
    new: str
    old: str
    fixed: list[Finding] = field(default_factory=list)  # in OLD, gone from NEW
    introduced: list[Finding] = field(default_factory=list)  # in NEW, not in OLD
    unchanged: list[Finding] = field(default_factory=list)
    added: list[dict[str, str]] = field(default_factory=list)
    removed: list[dict[str, str]] = field(default_factory=list)
    changed: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def short(f: Finding) -> dict[str, Any]:
            return {"id": f.id, "kind": f.kind, "severity": f.severity, "package": f.package,
                    "installed_version": f.installed_version, "fixed_version": f.fixed_version,
                    "path": f.path, "verdict": f.verdict}

        return {
            "image": self.new, "compared_with": self.old,
            "findings": {"fixed": [short(f) for f in self.fixed], "introduced": [short(f) for f in self.introduced],
                         "unchanged": [short(f) for f in self.unchanged]},
            "packages": {"added": self.added, "removed": self.removed, "changed": self.changed},
            "counts": {"fixed": len(self.fixed), "introduced": len(self.introduced),
                       "unchanged": len(self.unchanged), "packages_added": len(self.added),
                       "packages_removed": len(self.removed), "packages_changed": len(self.changed)},
        }


def _key(f: Finding) -> tuple[str, str, str, str]:
    return (f.kind, f.id, f.package, f.path)


def packages(report: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(type, name) -> version(s), from Trivy's report listed with --list-all-pkgs (pure).

    Not keyed by file path: a Python package's path names its version (`requests-2.0.0.dist-info`)."""
    found: dict[tuple[str, str], set[str]] = {}
    for res in report.get("Results") or []:
        for p in res.get("Packages") or []:
            found.setdefault((res.get("Type", ""), p.get("Name", "")), set()).add(p.get("Version", ""))
    return {k: ", ".join(sorted(v)) for k, v in found.items()}


def _order(f: Finding) -> tuple[int, str, str]:
    return (SEVERITY_ORDER.index(f.severity) if f.severity in SEVERITY_ORDER else 9, f.id, f.package)


def compare(new: str, new_findings: list[Finding], new_report: dict[str, Any],
            old: str, old_findings: list[Finding], old_report: dict[str, Any]) -> Comparison:
    """NEW against OLD (pure)."""
    n = {_key(f): f for f in new_findings}
    o = {_key(f): f for f in old_findings}
    c = Comparison(new, old)
    c.fixed = sorted((o[k] for k in o.keys() - n.keys()), key=_order)
    c.introduced = sorted((n[k] for k in n.keys() - o.keys()), key=_order)
    c.unchanged = sorted((n[k] for k in n.keys() & o.keys()), key=_order)
    np_, op = packages(new_report), packages(old_report)

    def row(k: tuple[str, str], **v: str) -> dict[str, str]:
        return {"type": k[0], "name": k[1], **v}

    c.added = [row(k, version=np_[k]) for k in sorted(np_.keys() - op.keys())]
    c.removed = [row(k, version=op[k]) for k in sorted(op.keys() - np_.keys())]
    c.changed = [row(k, old_version=op[k], new_version=np_[k]) for k in sorted(np_.keys() & op.keys())
                 if np_[k] != op[k]]
    return c


def _code(text: str) -> str:
    from ap_build.scan.report import md_code

    return md_code(text)


def _cell(text: str) -> str:
    from ap_build.scan.report import md

    return md(text)


def to_markdown(c: Comparison, max_rows: int = 50) -> str:
    """A pull-request comment section."""
    lines = [f"#### Compared with {_code(c.old)}", "",
             f"**{len(c.fixed)} fixed**, **{len(c.introduced)} introduced**, {len(c.unchanged)} unchanged findings; "
             f"packages: {len(c.added)} added, {len(c.removed)} removed, {len(c.changed)} changed.", ""]

    def findings(title: str, rows: list[Finding], open_: bool) -> None:
        if not rows:
            return
        lines.extend([f"<details{' open' if open_ else ''}><summary>{title} ({len(rows)})</summary>", "",
                      "| Severity | ID | Package | Installed | Fixed | Verdict |", "|---|---|---|---|---|---|"])
        for f in rows[:max_rows]:
            lines.append(f"| {f.severity} | {_cell(f.id)} | {_cell(f.package or f.path)} | "
                         f"{_cell(f.installed_version)} | {_cell(f.fixed_version or '-')} | {_cell(f.verdict)} |")
        if len(rows) > max_rows:
            lines.append(f"| | … {len(rows) - max_rows} more (see the JSON report) | | | | |")
        lines.extend(["", "</details>", ""])

    findings("Introduced", c.introduced, True)
    findings("Fixed", c.fixed, True)
    findings("Unchanged", c.unchanged, False)
    if c.added or c.removed or c.changed:
        lines.extend(["<details><summary>Packages</summary>", "", "| Change | Type | Package | Old | New |",
                      "|---|---|---|---|---|"])
        rows = [("added", r, "", r["version"]) for r in c.added]
        rows += [("removed", r, r["version"], "") for r in c.removed]
        rows += [("changed", r, r["old_version"], r["new_version"]) for r in c.changed]
        for change, r, old, new in rows[: max_rows * 2]:
            lines.append(f"| {change} | {_cell(r['type'])} | {_cell(r['name'])} | {_cell(old) or '-'} | "
                         f"{_cell(new) or '-'} |")
        lines.extend(["", "</details>", ""])
    return "\n".join(lines).rstrip() + "\n"


def to_lines(c: Comparison, max_ids: int = 20) -> list[str]:
    """A few plain lines for the terminal (the table's companion)."""
    def ids(rows: list[Finding]) -> str:
        names = [f"{f.id} ({f.package or f.path})" for f in rows[:max_ids]]
        return ", ".join(names) + (f", ... {len(rows) - max_ids} more" if len(rows) > max_ids else "")

    lines = [f"compared with {c.old}: {len(c.fixed)} fixed, {len(c.introduced)} introduced, "
             f"{len(c.unchanged)} unchanged; packages {len(c.added)} added, {len(c.removed)} removed, "
             f"{len(c.changed)} changed"]
    if c.fixed:
        lines.append(f"  fixed: {ids(c.fixed)}")
    if c.introduced:
        lines.append(f"  introduced: {ids(c.introduced)}")
    return lines
