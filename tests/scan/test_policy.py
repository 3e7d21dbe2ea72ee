"""The gate's policy on Trivy JSON reports written here (pure; no Trivy, no engine)."""

from __future__ import annotations

import datetime as dt

import pytest

from ap_build.scan.ignores import IgnoreEntry, parse_trivyignore
from ap_build.scan.policy import Policy, evaluate, parse_severities

from .reports import report, secret, vuln

TODAY = dt.date(2026, 11, 24)


def policy(**kw) -> Policy:
    return Policy(today=TODAY, **kw)


def ignores(text: str) -> list[IgnoreEntry]:
    entries, problems = parse_trivyignore(text, ".trivyignore")
    assert not problems
    return entries


def verdicts(v) -> dict[tuple[str, str], str]:
    return {(f.id, f.package): f.verdict for f in v.findings}


def test_default_gate_blocks_fixable_high_and_critical_only():
    r = report(
        [
            vuln("CVE-1", "zlib1g", "HIGH", fixed="2"),
            vuln("CVE-2", "libc6", "CRITICAL"),  # unfixed
            vuln("CVE-3", "tar", "LOW", fixed="2"),
            vuln("CVE-4", "gzip", "MEDIUM", fixed="2"),
            vuln("CVE-5", "bash", "CRITICAL", fixed="2"),
        ]
    )
    v = evaluate(r, [], policy())
    assert not v.passed
    assert verdicts(v) == {
        ("CVE-1", "zlib1g"): "blocking",
        ("CVE-2", "libc6"): "informational",
        ("CVE-3", "tar"): "informational",
        ("CVE-4", "gzip"): "informational",
        ("CVE-5", "bash"): "blocking",
    }
    assert [f.severity for f in v.findings] == ["CRITICAL", "CRITICAL", "HIGH", "MEDIUM", "LOW"]
    c = v.counts()
    assert (c["blocking"], c["ignored"], c["informational"], c["total"]) == (2, 0, 3, 5)
    assert c["by_severity"]["CRITICAL"] == {"blocking": 1, "ignored": 0, "informational": 1}


def test_unfixed_blocks_only_with_include_unfixed():
    r = report([vuln("CVE-2", "libc6", "CRITICAL")])
    assert evaluate(r, [], policy()).passed
    v = evaluate(r, [], policy(include_unfixed=True))
    assert not v.passed and v.findings[0].reason.startswith("CRITICAL without a fix")


def test_severity_option_changes_the_gate_and_low_never_blocks_by_default():
    r = report([vuln("CVE-3", "tar", "LOW", fixed="2"), vuln("CVE-4", "gzip", "MEDIUM", fixed="2")])
    assert evaluate(r, [], policy()).passed
    v = evaluate(r, [], policy(severities=parse_severities("medium,high")))
    assert verdicts(v) == {("CVE-3", "tar"): "informational", ("CVE-4", "gzip"): "blocking"}
    with pytest.raises(ValueError, match="SEVERE"):
        parse_severities("HIGH,SEVERE")


def test_vuln_type_selects_os_or_library_but_reports_everything():
    r = report(
        [vuln("CVE-1", "zlib1g", "HIGH", fixed="2")],
        [vuln("GHSA-1", "requests", "HIGH", installed="2.0.0", fixed="2.31.0")],
    )
    lib = evaluate(r, [], policy(vuln_type="library"))
    assert verdicts(lib) == {("CVE-1", "zlib1g"): "informational", ("GHSA-1", "requests"): "blocking"}
    os_ = evaluate(r, [], policy(vuln_type="os"))
    assert verdicts(os_) == {("CVE-1", "zlib1g"): "blocking", ("GHSA-1", "requests"): "informational"}
    assert len(evaluate(r, [], policy()).findings) == 2
    assert evaluate(report([vuln("CVE-1", "zlib1g", "HIGH", fixed="2")]), [], policy(vuln_type="library")).passed


def test_ignore_passes_and_expired_ignore_blocks_again():
    r = report([vuln("CVE-1", "zlib1g", "HIGH", fixed="2")])
    v = evaluate(r, ignores("CVE-1\n"), policy())
    assert v.passed and v.findings[0].verdict == "ignored" and v.findings[0].ignored_by == ".trivyignore:1"
    # active until 00:00 UTC of the expiry date: expiring tomorrow still ignores, expiring today does not
    v = evaluate(r, ignores("CVE-1 exp:2026-11-25\n"), policy())
    assert v.passed and v.ignores[0].state == "expiring" and v.ignores[0].days_left == 1
    v = evaluate(r, ignores("# old\nCVE-1 exp:2026-11-24\n"), policy())
    assert not v.passed
    assert v.ignores[0].state == "expired"
    assert "expired on 2026-11-24" in v.findings[0].reason and ".trivyignore:2" in v.findings[0].reason


def test_hygiene_stale_expiring_active():
    r = report([vuln("CVE-1", "zlib1g", "HIGH", fixed="2"), vuln("CVE-3", "tar", "LOW", fixed="2")])
    v = evaluate(r, ignores("CVE-1 exp:2026-12-01\nCVE-3 exp:2027-06-01\nCVE-9\n"), policy())
    assert [(i.entry.id, i.state, i.matched) for i in v.ignores] == [
        ("CVE-1", "expiring", 1),
        ("CVE-3", "active", 1),
        ("CVE-9", "stale", 0),
    ]
    assert v.counts()["ignores"] == {"active": 1, "expiring": 1, "expired": 0, "stale": 1}
    # the window is an option
    v = evaluate(r, ignores("CVE-1 exp:2026-12-01\n"), policy(warn_expiry_days=3))
    assert v.ignores[0].state == "active"


def test_secret_blocks_regardless_of_severity_unless_ignored_by_rule_id():
    r = report(secrets=[("/opt/app/.env", secret(severity="MEDIUM"))])
    v = evaluate(r, [], policy())
    assert not v.passed and v.findings[0].kind == "secret" and v.findings[0].path == "/opt/app/.env"
    assert evaluate(r, ignores("aws-access-key-id\n"), policy()).passed


def test_yaml_entry_paths_and_purls_narrow_the_match():
    from ap_build.scan.ignores import parse_trivyignore_yaml

    r = report([vuln("CVE-1", "zlib1g", "HIGH", fixed="2"), vuln("CVE-1", "libz-dev", "HIGH", fixed="2")])
    entries, problems = parse_trivyignore_yaml(
        "vulnerabilities:\n  - id: CVE-1\n    purls: ['pkg:deb/debian/zlib1g@1.0-1']\n    statement: not reachable\n",
        ".trivyignore.yaml",
    )
    assert not problems
    v = evaluate(r, entries, policy())
    assert verdicts(v) == {("CVE-1", "zlib1g"): "ignored", ("CVE-1", "libz-dev"): "blocking"}
    assert "not reachable" in next(f.reason for f in v.findings if f.verdict == "ignored")


def test_empty_report_passes_and_missing_results_are_tolerated():
    assert evaluate({"SchemaVersion": 2, "Results": None}, [], policy()).passed
    assert evaluate(report(), [], policy()).passed


def test_the_base_images_list_is_read_from_the_labels_in_trivys_report():
    from ap_build.platform import BASE_TRIVYIGNORE_LABEL
    from ap_build.scan.gate import BASE_IGNORES_SOURCE, image_labels, inherited_ignores

    r = report([vuln("CVE-1", "zlib1g", "HIGH", fixed="2")])
    assert inherited_ignores(image_labels(r)) is None  # no label: no list (Trivy wrote no ImageConfig)
    r["Metadata"]["ImageConfig"] = {"config": {"Labels": {BASE_TRIVYIGNORE_LABEL: "# why\nCVE-1\nnot an id!\n"}}}
    entries, problems = inherited_ignores(image_labels(r))
    assert [(e.id, e.where) for e in entries] == [("CVE-1", f"{BASE_IGNORES_SOURCE}:2")]
    assert [p.where for p in problems] == [f"{BASE_IGNORES_SOURCE}:3"]
    v = evaluate(r, entries, policy(), problems)
    assert v.passed and v.findings[0].ignored_by == f"{BASE_IGNORES_SOURCE}:2"
    r["Metadata"]["ImageConfig"]["config"]["Labels"][BASE_TRIVYIGNORE_LABEL] = ""  # a user image emptied it
    assert inherited_ignores(image_labels(r)) == ([], [])


def test_yaml_entry_paths_are_doublestar_globs_as_in_trivy():
    from ap_build.scan.ignores import parse_trivyignore_yaml

    deep = "usr/lib/python3/dist-packages/pkg/tests/data/key.pem"
    r = report([], [], [(deep, {"RuleID": "private-key", "Severity": "HIGH", "Category": "AsymmetricPrivateKey",
                                "Title": "key", "StartLine": 1})])
    for pattern, ignored in (("usr/lib/python3/dist-packages/pkg/tests/*", False),  # `*`: one directory only
                             ("usr/lib/python3/dist-packages/pkg/tests/**", True),
                             ("/usr/lib/python3/**/key.pem", True)):
        entries, _ = parse_trivyignore_yaml(f"secrets:\n  - id: private-key\n    paths: ['{pattern}']\n", "t.yaml")
        assert evaluate(r, entries, policy()).passed is ignored, pattern
