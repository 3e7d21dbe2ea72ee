"""Grype ignore files: parsing with file:line problems, Grype's matching semantics, enforced expiry (pure)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ap_build.errors import UsageError
from ap_build.scan.grype import parse_grype
from ap_build.scan.ignores import (
    MAX_IGNORE_LINES,
    discover_ignore_files,
    load_ignore_file,
    parse_ignore_text,
    parse_label_ignores,
    parse_trivyignore_yaml,
)
from ap_build.scan.policy import Policy, evaluate

from .reports import report, vuln

FIXTURES = Path(__file__).parent / "fixtures"
TODAY = dt.date(2026, 11, 24)


def verdicts(text: str, r: dict, source: str = ".grype.yaml") -> dict[tuple[str, str], str]:
    entries, _problems = parse_grype(text, source)
    return {(f.id, f.package): f.verdict for f in evaluate(r, entries, Policy(today=TODAY)).findings}


def lib(vid: str, pkg: str, version: str, path: str) -> dict:
    return vuln(vid, pkg, "HIGH", installed=version, fixed="99", PkgPath=path,
                PkgIdentifier={"PURL": f"pkg:pypi/{pkg}@{version}"}, DataSource={"ID": "ghsa"})


def test_platform_files_parse_with_lines_reasons_expiry_and_every_document():
    entries, problems = load_ignore_file(FIXTURES / "r-base.grype.yml")
    assert [(e.id, e.line, e.expires) for e in entries] == [
        ("CVE-2099-0001", 2, dt.date(2020, 8, 11)),
        ("CVE-2099-0003", 9, None),
        ("GHSA-2099-aaaa-bbbb", 23, None),  # the second YAML document, as the platform's `yq eval-all` merge
    ]
    assert entries[0].statement == "Not remediable here: the fix is not in Debian yet."
    assert entries[2].statement.startswith("The package is only used at build time.\n")
    # upstream-name cannot be evaluated on Trivy's findings: reported at its line, the rule ignores nothing
    assert [p.line for p in problems] == [15] and "upstream-name" in problems[0].message
    entries, problems = load_ignore_file(FIXTURES / "python-base.grype.yml")
    assert not problems and [e.rule.location for e in entries] == ["", "/usr/local/aws-cli/v2/*/dist/**"]


def test_every_named_field_must_match():
    r = report(
        [vuln("CVE-1", "zlib1g", "HIGH", fixed="2", DataSource={"ID": "debian"}),
         vuln("CVE-1", "libssl3", "HIGH", fixed="2"), vuln("CVE-2", "tar", "HIGH")],
        [lib("CVE-1", "requests", "2.0.0", "usr/lib/python3/dist-packages/requests-2.0.0.dist-info/METADATA")],
    )
    rules = """ignore:
  - vulnerability: CVE-1
    package: {name: "zlib.*", type: deb}
  - vulnerability: CVE-1
    package: {name: requests, version: 2.0.0, language: python, location: "/usr/lib/python3/**"}
"""
    assert verdicts(rules, r) == {
        ("CVE-1", "zlib1g"): "ignored",  # anchored regular expression on the name, and the type
        ("CVE-1", "libssl3"): "blocking",  # another package: not ignored
        ("CVE-1", "requests"): "ignored",  # version, language and doublestar location all match
        ("CVE-2", "tar"): "informational",
    }
    other = "ignore:\n  - vulnerability: CVE-1\n    package: {name: requests, version: 2.0.1}\n"
    assert verdicts(other, r)[("CVE-1", "requests")] == "blocking"
    by_state = "ignore:\n  - fix-state: not-fixed\n  - namespace: debian:distro:debian:12\n"
    v = verdicts(by_state, report([vuln("CVE-2", "tar", "CRITICAL"), vuln("CVE-3", "gzip", "HIGH", fixed="2",
                                                                           DataSource={"ID": "debian"})]))
    assert v == {("CVE-2", "tar"): "ignored", ("CVE-3", "gzip"): "ignored"}


def test_aliases_only_with_include_aliases():
    r = report([vuln("CVE-9", "zlib1g", "HIGH", fixed="2", VendorIDs=["DSA-5999-1"])])
    assert verdicts("ignore:\n  - vulnerability: DSA-5999-1\n", r)[("CVE-9", "zlib1g")] == "blocking"
    rule = "ignore:\n  - vulnerability: DSA-5999-1\n    include-aliases: true\n"
    assert verdicts(rule, r)[("CVE-9", "zlib1g")] == "ignored"


def test_expires_at_is_enforced_and_reported():
    r = report([vuln("CVE-1", "zlib1g", "HIGH", fixed="2")])
    entries, _ = parse_grype("ignore:\n  - vulnerability: CVE-1\n    expires-at: 2026-11-24\n", ".grype.yaml")
    v = evaluate(r, entries, Policy(today=TODAY))
    assert v.findings[0].verdict == "blocking" and "expired on 2026-11-24" in v.findings[0].reason
    assert v.ignores[0].state == "expired"
    entries, _ = parse_grype("ignore:\n  - vulnerability: CVE-1\n    expires-at: 2026-11-30T12:00:00Z\n", "g.yaml")
    v = evaluate(r, entries, Policy(today=TODAY))
    assert v.passed and v.ignores[0].state == "expiring" and v.ignores[0].days_left == 6


@pytest.mark.parametrize(
    ("rule", "line", "words"),
    [
        ("  - vulnerability: CVE-1\n    match-type: exact-direct-match\n", 3, "match-type"),
        ("  - vulnerability: CVE-1\n    vex-status: not_affected\n", 3, "--vex"),
        ("  - vulnerability: CVE-1\n    expires-at: 2026-13-01\n", 3, "2026-13-01"),
        ("  - vulnerability: CVE-1\n    fix-state: maybe\n", 3, "fix-state"),
        ("  - vulnerability: CVE-1\n    package: {type: binary}\n", 3, "binary"),
        ("  - vulnerability: CVE-1\n    pkg: typo\n", 3, "pkg"),
        ("  - reason: names nothing\n", 2, "no criterion"),
        ("  - vulnerability: CVE-1\n    package: {name: '('}\n", 3, "regular expression"),
    ],
)
def test_unmappable_or_malformed_fields_are_problems_and_ignore_nothing(rule, line, words):
    text = "# exceptions\nignore:\n" + rule
    entries, problems = parse_grype(text, ".grype.yaml")
    assert entries == [] and [p.line for p in problems] == [line + 1] and words in problems[0].message
    assert verdicts(text, report([vuln("CVE-1", "zlib1g", "HIGH", fixed="2")])) == {("CVE-1", "zlib1g"): "blocking"}


def test_discovery_and_dispatch(tmp_path: Path):
    (tmp_path / ".grype.yaml").write_text("ignore:\n  - vulnerability: CVE-1\n")
    (tmp_path / ".trivyignore").write_text("CVE-2\n")
    assert [p.name for p in discover_ignore_files(tmp_path)] == [".trivyignore", ".grype.yaml"]
    assert [e.format for f in discover_ignore_files(tmp_path) for e in load_ignore_file(f)[0]] == [
        "trivyignore", "grype"]
    # a base image's label may hold either format
    assert parse_label_ignores("CVE-3\n", "label:x")[0][0].format == "trivyignore"
    grype_label = parse_label_ignores("# base\nignore:\n  - vulnerability: CVE-4\n", "label:x")[0]
    assert grype_label[0].rule.vulnerability == "CVE-4"


def test_bounds_and_malformed_dates_are_clean_errors(tmp_path: Path):
    big = tmp_path / ".trivyignore"
    big.write_text("CVE-1\n" * (MAX_IGNORE_LINES + 1))
    with pytest.raises(UsageError, match="ignore list too large"):
        load_ignore_file(big)
    entries, problems = parse_label_ignores("CVE-1\n" * (MAX_IGNORE_LINES + 1), "label:x")
    assert entries == [] and "too large" in problems[0].message
    bad_date = "vulnerabilities:\n  - id: CVE-1\n    expired_at: 2026-13-01\n"
    entries, problems = parse_trivyignore_yaml(bad_date, "y.yaml")
    assert entries == [] and problems[0].line == 3 and "2026-13-01" in problems[0].message
    bomb = "a: &a [1,2,3,4,5,6,7,8,9]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdef", "bcdefg", strict=True))
    assert "alias" in parse_ignore_text(bomb, ".trivyignore.yaml")[1][0].message
    for depth in (999, 5000):  # Python's recursion limit, libyaml's nesting limit: both clean problems
        deep = "a: " + "[" * depth + "]" * depth + "\n"
        assert "nest" in parse_ignore_text(deep, ".grype.yaml")[1][0].message


def test_ignore_lists_at_the_bound_parse_and_apply_in_linear_time():
    import time

    text = "".join(f"CVE-2024-{i}\n" for i in range(MAX_IGNORE_LINES - 1))
    start = time.perf_counter()
    entries, problems = parse_ignore_text(text, ".trivyignore")
    v = evaluate(report([vuln(f"CVE-2024-{i}", "zlib1g", "HIGH", fixed="2") for i in range(0, 5000, 7)]),
                 entries, Policy(today=TODAY))
    assert v.passed and not problems and len(entries) == MAX_IGNORE_LINES - 1
    assert time.perf_counter() - start < 30  # generous: was quadratic (27 s for 1e6 lines); a hang fails


def test_a_base_image_carries_its_list_in_grypes_format(tmp_path: Path):
    """`image build` reads a `.grype.yaml` as the base's list (its label); the scan reads the label back."""
    from ap_build.images.build import read_base_ignores
    from ap_build.platform import BASE_TRIVYIGNORE_LABEL
    from ap_build.scan.gate import inherited_ignores

    good = tmp_path / ".grype.yaml"
    good.write_text((FIXTURES / "python-base.grype.yml").read_text())
    label = read_base_ignores(good)
    entries, problems = inherited_ignores({BASE_TRIVYIGNORE_LABEL: label})
    assert not problems and [e.rule.vulnerability for e in entries] == ["CVE-2099-0001", "CVE-2099-0002"]
    bad = tmp_path / "bad.grype.yml"
    bad.write_text("ignore:\n  - vulnerability: CVE-1\n    match-type: cpe-match\n")
    with pytest.raises(UsageError, match=r"bad\.grype\.yml:3: CVE-1: `match-type`"):
        read_base_ignores(bad)


def test_a_trivyignore_reason_is_the_comment_at_the_end_of_the_line_or_just_above():
    from ap_build.scan.ignores import parse_trivyignore

    text = "# header\n\n# botocore pulls an old urllib3\nCVE-1 exp:2027-01-31\nCVE-2\nCVE-3  # own reason\n"
    assert [(e.id, e.statement) for e in parse_trivyignore(text, ".trivyignore")[0]] == [
        ("CVE-1", "botocore pulls an old urllib3"), ("CVE-2", ""), ("CVE-3", "own reason")]
