"""Exceptions across formats (pure): conversion, OpenVEX documents (validated against the OpenVEX JSON
schema), `exceptions check` policy, and the --compare diff."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import jsonschema

from ap_build.scan.compare import compare, to_markdown
from ap_build.scan.convert import grype_to_trivyignore_yaml, to_grype, to_trivyignore_yaml
from ap_build.scan.exceptions import Exceptions, check
from ap_build.scan.grype import parse_grype
from ap_build.scan.ignores import parse_trivyignore, parse_trivyignore_yaml
from ap_build.scan.policy import Policy, evaluate, findings_from_report, matches
from ap_build.scan.vex import image_purl, openvex_document

from .reports import report, vuln

# The OpenVEX JSON schema 0.2.0 (openvex/spec `openvex_json_schema_0.2.0.json`), taken from the PyPI wheel
# fixproof 0.2.0 (fixproof/schemas/official/openvex.schema.json, Apache-2.0): there is no network for schemas.
OPENVEX_SCHEMA = json.loads((Path(__file__).parent / "openvex-schema-0.2.0.json").read_text())
FIXTURES = Path(__file__).parent / "fixtures"
TODAY = dt.date(2026, 11, 24)
NOW = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.timezone.utc)  # noqa: UP017


def test_migrate_conversion_keeps_ids_scopes_reasons_and_expiry_and_lists_the_rest():
    text = (FIXTURES / "r-base.grype.yml").read_text()
    out, skipped = grype_to_trivyignore_yaml(text, "repo/.grype.yml")
    entries, problems = parse_trivyignore_yaml(out, ".trivyignore.yaml")
    assert not problems
    assert [(e.id, e.purls, e.expires) for e in entries] == [
        ("CVE-2099-0001", ("pkg:deb/debian/zlib1g",), dt.date(2020, 8, 11)),
        ("GHSA-2099-aaaa-bbbb", ("pkg:pypi/requests@2.0.0",), None),
    ]
    assert entries[0].statement.startswith("Not remediable here")
    # a name without a package type cannot become a PURL; upstream-name cannot be applied: both listed
    assert [s.split(":")[1] for s in skipped] == ["15", "9"] and all(s in out for s in skipped)
    # what was carried over ignores the same findings as the original rules
    r = report([vuln("CVE-2099-0001", "zlib1g", "HIGH", fixed="2")],
               [vuln("GHSA-2099-aaaa-bbbb", "requests", "HIGH", installed="2.0.0", fixed="2.31.0",
                     PkgIdentifier={"PURL": "pkg:pypi/requests@2.0.0"})])
    grype, _ = parse_grype(text, ".grype.yml")
    now = dt.date(2020, 1, 1)
    assert [f.verdict for f in evaluate(r, entries, Policy(today=now)).findings] == [
        f.verdict for f in evaluate(r, grype, Policy(today=now)).findings] == ["ignored", "ignored"]


def test_trivy_formats_round_trip_through_grype():
    text = ("vulnerabilities:\n  - id: CVE-1\n    purls: ['pkg:pypi/urllib3@1.26.18']\n    statement: no proxy\n"
            "    expired_at: 2027-01-31\n  - id: CVE-2\n    paths: ['usr/local/aws-cli/**']\n"
            "secrets:\n  - id: aws-access-key-id\n")
    entries, _ = parse_trivyignore_yaml(text, ".trivyignore.yaml")
    conv = to_grype(entries)
    assert conv.doc["ignore"] == [
        {"vulnerability": "CVE-1", "package": {"name": "urllib3", "type": "python", "version": "1.26.18"},
         "reason": "no proxy", "expires-at": "2027-01-31"},
        {"vulnerability": "CVE-2", "package": {"location": "/usr/local/aws-cli/**"}},
    ]
    assert "Grype does not scan for secrets" in conv.skipped[0]
    back = to_trivyignore_yaml(parse_grype(json.dumps(conv.doc), ".grype.yaml")[0]).doc
    assert back["vulnerabilities"][0] == {"id": "CVE-1", "purls": ["pkg:pypi/urllib3@1.26.18"],
                                          "statement": "no proxy", "expired_at": "2027-01-31"}


def test_openvex_names_the_image_and_the_ignored_packages_and_validates():
    r = report([vuln("CVE-1", "zlib1g", "HIGH", fixed="2"), vuln("CVE-1", "libssl3", "HIGH", fixed="2"),
                vuln("CVE-3", "tar", "HIGH", fixed="2")])
    r["Metadata"]["RepoDigests"] = ["localhost/team/app@sha256:" + "a" * 64]
    entries = parse_grype("ignore:\n  - vulnerability: CVE-1\n    package: {name: zlib1g}\n    reason: unreachable\n"
                          "  - fix-state: fixed\n    package: {name: tar}\n", ".grype.yaml")[0]
    entries += parse_trivyignore("CVE-9 exp:2020-01-01\n", ".trivyignore")[0]
    findings = findings_from_report(r)
    found = {i: [f for f in findings if matches(e, f)] for i, e in enumerate(entries)}
    product = image_purl(r)
    assert product == "pkg:oci/app@sha256:" + "a" * 64
    doc, skipped = openvex_document(entries, found, product=product, today=TODAY, now=NOW)
    jsonschema.validate(doc, OPENVEX_SCHEMA)
    assert [(s["vulnerability"]["name"], [c["@id"] for c in s["products"][0]["subcomponents"]])
            for s in doc["statements"]] == [
        ("CVE-1", ["pkg:deb/debian/zlib1g@1.0-1?arch=amd64&distro=debian-12.15"]),
        ("CVE-3", ["pkg:deb/debian/tar@1.0-1?arch=amd64&distro=debian-12.15"]),  # an ID-less rule, resolved
    ]
    assert doc["statements"][0]["impact_statement"] == "unreachable"
    assert skipped == [".trivyignore:1: CVE-9 expired on 2020-01-01; it ignores nothing, not exported"]


def test_check_policy():
    entries = parse_trivyignore("CVE-1 exp:2026-11-30  # why\nCVE-2\nCVE-3 exp:2026-01-01\n", ".trivyignore")[0]
    base = parse_trivyignore("CVE-2\n", "label:base")[0]
    ok, found = check(Exceptions(entries, [], [".trivyignore"], base), today=TODAY)
    assert not ok and {(v.entry.id, v.kind, v.blocking) for v in found} == {
        ("CVE-1", "expiring", False), ("CVE-3", "expired", True), ("CVE-2", "duplicate", False)}
    ok, found = check(Exceptions(entries[:2], [], [], []), today=TODAY, require_reason=True, max_expiry_days=30)
    assert not ok and {(v.entry.id, v.kind) for v in found if v.blocking} == {("CVE-2", "no-reason"),
                                                                                ("CVE-2", "no-expiry")}
    assert check(Exceptions(entries[:1], [], [], []), today=TODAY, require_reason=False, max_expiry_days=30)[0]


def test_compare_fixed_introduced_and_packages():
    old = report([vuln("CVE-1", "zlib1g", "HIGH", fixed="2"), vuln("CVE-2", "tar", "LOW", fixed="2")])
    new = report([vuln("CVE-2", "tar", "LOW", installed="1.0-2", fixed="2"), vuln("CVE-3", "gzip", "HIGH")])
    old["Results"][0]["Packages"] = [{"Name": "zlib1g", "Version": "1"}, {"Name": "tar", "Version": "1.0-1"}]
    new["Results"][0]["Packages"] = [{"Name": "gzip", "Version": "1"}, {"Name": "tar", "Version": "1.0-2"}]
    c = compare("new", findings_from_report(new), new, "old", findings_from_report(old), old)
    assert ([f.id for f in c.fixed], [f.id for f in c.introduced], [f.id for f in c.unchanged]) == (
        ["CVE-1"], ["CVE-3"], ["CVE-2"])
    assert c.to_dict()["packages"] == {
        "added": [{"type": "debian", "name": "gzip", "version": "1"}],
        "removed": [{"type": "debian", "name": "zlib1g", "version": "1"}],
        "changed": [{"type": "debian", "name": "tar", "old_version": "1.0-1", "new_version": "1.0-2"}],
    }
    md = to_markdown(c)
    assert md.startswith("#### Compared with `old`") and "**1 fixed**, **1 introduced**" in md
    from ap_build.scan.compare import to_lines

    assert to_lines(c) == ["compared with old: 1 fixed, 1 introduced, 1 unchanged; packages 1 added, 1 removed, "
                           "1 changed", "  fixed: CVE-1 (zlib1g)", "  introduced: CVE-3 (gzip)"]


def test_the_scaffolded_ci_checks_the_exceptions(cli, tmp_path, monkeypatch):
    """The template's `Check Exceptions` step, run as CI runs it in a fresh scaffold and after a bad edit."""
    import shlex

    import yaml

    from ap_build.scaffold.render import Answers, render_files

    files = render_files("python", Answers(name="demo", org="moj-analytical-services"))
    (tmp_path / ".trivyignore").write_text(files[".trivyignore"])
    job = next(iter(yaml.safe_load(files[".github/workflows/scan-container.yml"])["jobs"].values()))
    # the caller's input to ap-build's reusable scan workflow, whose action runs `ap-build exceptions check ARGS`
    argv = ["ap-build", "exceptions", "check", *shlex.split(job["with"]["exceptions-args"])]
    monkeypatch.chdir(tmp_path)
    assert cli(*argv[1:]).exit_code == 0, "a fresh repository passes"
    (tmp_path / ".grype.yaml").write_text("ignore:\n  - vulnerability: CVE-2099-1\n")
    res = cli(*argv[1:])
    assert res.exit_code == 1 and "no-reason" in res.stdout and "no-expiry" in res.stdout


def test_vex_documents_trivy_cannot_apply_to_an_image_are_refused_before_the_scan(tmp_path):
    import pytest

    from ap_build.errors import UsageError
    from ap_build.scan.vex import check_vex_file

    doc, _ = openvex_document(parse_trivyignore("CVE-1  # why\n", ".trivyignore")[0], None, product=None,
                              today=TODAY, now=NOW)
    (tmp_path / "ok.json").write_text(json.dumps(doc))
    assert check_vex_file(tmp_path / "ok.json") == "openvex"
    (tmp_path / "cdx.json").write_text('{"bomFormat": "CycloneDX", "specVersion": "1.5", "vulnerabilities": []}')
    with pytest.raises(UsageError, match="CycloneDX VEX: Trivy applies it only when scanning a CycloneDX SBOM"):
        check_vex_file(tmp_path / "cdx.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(UsageError, match="not a readable JSON VEX document"):
        check_vex_file(tmp_path / "junk.json")


def test_check_names_duplicates_of_the_base_list(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".trivyignore").write_text("CVE-2099-7  # also in the base\nCVE-2099-8 exp:2099-01-01  # ours\n")
    (tmp_path / "base.grype.yaml").write_text("ignore:\n  - vulnerability: CVE-2099-7\n")
    res = cli("exceptions", "check", "--base", "base.grype.yaml", "--json")
    assert res.exit_code == 0, res.stderr  # a duplicate is a warning
    doc = json.loads(res.stdout)
    assert [(f["id"], f["line"], f["kind"], f["blocking"]) for f in doc["findings"]] == [
        ("CVE-2099-7", 1, "duplicate", False)]
    assert doc["sources"][-1] == "base.grype.yaml" and doc["base_entries"] == 1
    assert cli("exceptions", "check", "--base", "no-such-image:1").exit_code == 2
    res = cli("exceptions", "export", "--format", "grype", "--base", "base.grype.yaml")
    rules = [r["vulnerability"] for r in __import__("yaml").safe_load(res.stdout)["ignore"]]
    assert res.exit_code == 0 and rules == ["CVE-2099-7", "CVE-2099-8", "CVE-2099-7"]  # the repository's, the base's


def test_a_bare_secret_rule_id_stays_a_secret_exception():
    entries = parse_trivyignore("aws-access-key-id  # test key in a fixture\nCVE-2099-1\n", ".trivyignore")[0]
    assert to_trivyignore_yaml(entries).doc == {
        "vulnerabilities": [{"id": "CVE-2099-1"}],
        "secrets": [{"id": "aws-access-key-id", "statement": "test key in a fixture"}]}
    assert [r["vulnerability"] for r in to_grype(entries).doc["ignore"]] == ["CVE-2099-1"]
    doc, skipped = openvex_document(entries, None, product=None, today=TODAY, now=NOW)
    assert [s["vulnerability"]["name"] for s in doc["statements"]] == ["CVE-2099-1"]
    assert "aws-access-key-id is not a vulnerability exception" in skipped[0]


def test_check_warns_where_grype_reads_a_name_surprisingly_and_export_keeps_literals_literal(cli, tmp_path,
                                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".grype.yaml").write_text(
        "ignore:\n  - vulnerability: CVE-1\n    package:\n      name: libc6|zlib1g\n      type: deb\n"
        "  - vulnerability: CVE-2\n    package:\n      name: ^(libc6|zlib1g)$\n      type: deb\n"
        "  - vulnerability: CVE-3\n    package:\n      name: g+\n      type: deb\n")
    r = cli("exceptions", "check")
    assert r.exit_code == 0, r.stdout + r.stderr  # a warning, not a failure: Grype reads it the same way
    assert (".grype.yaml:2: CVE-1: Grype anchors it as ^libc6|zlib1g$: it matches any name "
            "starting with libc6, or ending with zlib1g") in r.stdout and r.stdout.startswith("alternation ")
    assert ".grype.yaml:6" not in r.stdout  # an explicit group says what it means
    # a Grype regex never becomes a literal PURL; a PURL's name becomes a literal Grype name
    out, skipped = grype_to_trivyignore_yaml((tmp_path / ".grype.yaml").read_text(), ".grype.yaml")
    assert len(skipped) == 3 and "pkg:deb" not in out
    entries, _ = parse_trivyignore_yaml("vulnerabilities:\n  - id: CVE-1\n    purls: ['pkg:deb/debian/libssl1.1',"
                                        " 'pkg:deb/debian/libstdc%2B%2B6']\n", ".trivyignore.yaml")
    assert [r["package"]["name"] for r in to_grype(entries).doc["ignore"]] == ["libssl1.1", "libstdc\\+\\+6"]
