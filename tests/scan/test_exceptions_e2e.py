"""Exceptions end to end with the REAL Trivy and a fixture DB: Grype ignore files, VEX through Trivy, the
export round trip, and `scan --compare` between two images built here."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from support.images import build_cached, source_versions
from support.trivydb import Advisory, write_trivy_db

from ap_build.platform import BASE_TRIVYIGNORE_LABEL

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine")]

ZLIB = "CVE-2099-0101"  # zlib (zlib1g), HIGH, fixed
TAR = "CVE-2099-0102"  # tar, HIGH, fixed
GZIP = "CVE-2099-0103"  # gzip, HIGH, fixed: ignored by the base image's Grype-format label
REQUESTS = "GHSA-2099-rrrr-1111"  # requests < 2.31.0 (pip), HIGH: fixed by the newer image
URLLIB3 = "GHSA-2099-uuuu-2222"  # urllib3 < 2.0.0 (pip), HIGH: introduced by the newer image
OPENVEX_SCHEMA = json.loads((Path(__file__).parent / "openvex-schema-0.2.0.json").read_text())
BASE_GRYPE = f"""# the base image's exceptions, in Grype's format
ignore:
  - vulnerability: {GZIP}
    reason: gzip is not reachable from user code
"""


def dist_info(name: str, version: str) -> tuple[str, dict[str, str]]:
    d = f"{name}-{version}.dist-info"
    return (f"COPY {d} /usr/lib/python3/dist-packages/{d}\n",
            {f"{d}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"})


@pytest.fixture(scope="session")
def old_image(engine, debian_base) -> str:
    """A base carrying its ignore list in Grype's format (the label), with requests 2.0.0."""
    copy, files = dist_info("requests", "2.0.0")
    return build_cached(engine, "exc-old", f"FROM {debian_base}\n{copy}", files,
                        labels={BASE_TRIVYIGNORE_LABEL: BASE_GRYPE})


@pytest.fixture(scope="session")
def new_image(engine, debian_base) -> str:
    """The bump: requests 2.31.0 (fixes REQUESTS), urllib3 1.26.0 added (introduces URLLIB3)."""
    c1, f1 = dist_info("requests", "2.31.0")
    c2, f2 = dist_info("urllib3", "1.26.0")
    return build_cached(engine, "exc-new", f"FROM {debian_base}\n{c1}{c2}", {**f1, **f2},
                        labels={BASE_TRIVYIGNORE_LABEL: BASE_GRYPE})


@pytest.fixture(scope="session")
def advisories(engine, old_image) -> list[Advisory]:
    v = source_versions(engine, old_image)
    return [
        Advisory(ZLIB, "zlib", "HIGH", fixed_version=v["zlib"] + "+apfix1"),
        Advisory(TAR, "tar", "HIGH", fixed_version=v["tar"] + "+apfix1"),
        Advisory(GZIP, "gzip", "HIGH", fixed_version=v["gzip"] + "+apfix1"),
        Advisory(REQUESTS, "requests", "HIGH", fixed_version="2.31.0", ecosystem="pip"),
        Advisory(URLLIB3, "urllib3", "HIGH", fixed_version="2.0.0", ecosystem="pip"),
    ]


@pytest.fixture
def db(tmp_path, advisories) -> Path:
    return write_trivy_db(tmp_path / "trivy-cache", advisories)


def scan(cli, image: str, db: Path, *args: str) -> tuple[int, dict, dict[str, set[str]]]:
    res = cli("scan", image, "--cache-dir", str(db), "--skip-db-update", "--json", *args)
    assert res.exit_code in (0, 1), res.stderr
    doc = json.loads(res.stdout)
    by: dict[str, set[str]] = {}
    for f in doc["findings"]:
        by.setdefault(f["verdict"], set()).add(f["id"])
    return res.exit_code, doc, by


def test_grype_rules_ignore_with_grypes_semantics_and_expiry(cli, old_image, db, repo):
    yesterday = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)).isoformat()  # noqa: UP017
    (repo / ".grype.yaml").write_text(f"""---
# Grype configuration file for container vulnerability scanning
ignore:
  # by ID: ignores
  - vulnerability: {ZLIB}
    expires-at: "2099-08-11"
    reason: >-
      Not reachable: awaiting the Debian point release.
  # scoped to another package: must not ignore tar's finding
  - vulnerability: {TAR}
    package:
      name: libssl3
      type: deb
  # expired: the finding blocks again
  - vulnerability: {REQUESTS}
    expires-at: "{yesterday}"
    package: {{name: requests, version: 2.0.0, type: python, location: "/usr/lib/python3/**"}}
  # a field Trivy's findings cannot answer: reported, ignores nothing
  - vulnerability: {TAR}
    package:
      upstream-name: tar
""")
    code, doc, by = scan(cli, old_image, db)
    assert code == 1
    assert by["ignored"] == {ZLIB, GZIP}  # GZIP: the base image's label, in Grype's format
    assert by["blocking"] == {TAR, REQUESTS}
    states = {(i["id"], i["line"]): i["state"] for i in doc["ignores"]}
    assert states[(ZLIB, 5)] == "active" and states[(TAR, 10)] == "stale" and states[(REQUESTS, 15)] == "expired"
    assert "expired on" in next(f["reason"] for f in doc["findings"] if f["id"] == REQUESTS)
    assert [(p["source"].rsplit("/", 1)[-1], p["line"]) for p in doc["problems"]] == [(".grype.yaml", 21)]
    assert "upstream-name" in doc["problems"][0]["message"]
    zlib = next(f for f in doc["findings"] if f["id"] == ZLIB)
    assert zlib["reason"].endswith("(Not reachable: awaiting the Debian point release.)")


def test_vex_not_affected_settles_a_finding_through_trivy(cli, old_image, db, repo):
    code, doc, _ = scan(cli, old_image, db, "--no-base-ignores")
    zlib = next(f for f in doc["findings"] if f["id"] == ZLIB)
    vex = {"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.invalid/vex/1", "author": "test",
           "timestamp": "2026-12-01T00:00:00Z", "version": 1,
           "statements": [{"vulnerability": {"name": ZLIB}, "products": [{"@id": zlib["purl"]}],
                           "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"}]}
    jsonschema.validate(vex, OPENVEX_SCHEMA)
    (repo / "vex.json").write_text(json.dumps(vex))
    code, doc, by = scan(cli, old_image, db, "--no-base-ignores", "--vex", "vex.json")
    assert code == 1 and ZLIB in by["ignored"] and ZLIB not in by.get("blocking", set())
    settled = next(f for f in doc["findings"] if f["id"] == ZLIB)
    assert settled["vex"]["status"] == "not_affected"
    assert settled["vex"]["justification"] == "vulnerable_code_not_in_execute_path"
    assert settled["reason"] == "settled by VEX: not_affected (vulnerable_code_not_in_execute_path)"
    assert cli("scan", old_image, "--cache-dir", str(db), "--vex", "missing.json").exit_code == 2


def test_export_round_trip_keeps_the_verdict(cli, old_image, db, repo):
    (repo / ".grype.yaml").write_text(f"ignore:\n  - vulnerability: {ZLIB}\n    reason: unreachable\n"
                                      f"  - vulnerability: {REQUESTS}\n    package: {{name: requests}}\n")
    (repo / ".trivyignore").write_text(f"{TAR}  # tar is only used at build time\n")
    code, _doc, by = scan(cli, old_image, db)
    assert code == 0 and by["ignored"] == {ZLIB, TAR, GZIP, REQUESTS}
    res = cli("exceptions", "export", "--format", "openvex", "--image", old_image, "--cache-dir", str(db),
              "--skip-db-update", "--output", "vex.json")
    assert res.exit_code == 0, res.stderr
    vex = json.loads((repo / "vex.json").read_text())
    jsonschema.validate(vex, OPENVEX_SCHEMA)
    assert {s["vulnerability"]["name"] for s in vex["statements"]} == {ZLIB, TAR, GZIP, REQUESTS}
    assert all(s["products"][0]["@id"].startswith("pkg:oci/exc-old@sha256:") for s in vex["statements"])
    # the other formats carry the same exceptions (the base's included)
    for fmt, name in (("trivyignore-yaml", "exported.trivyignore.yaml"), ("grype", "exported.grype.yaml")):
        res = cli("exceptions", "export", "--format", fmt, "--image", old_image, "--cache-dir", str(db),
                  "--skip-db-update", "-o", f"out/{name}")
        assert res.exit_code == 0, res.stderr
    for name in (".grype.yaml", ".trivyignore"):
        (repo / name).unlink()
    for name in ("exported.trivyignore.yaml", "exported.grype.yaml"):
        code2, _doc, by2 = scan(cli, old_image, db, "--no-base-ignores", "--ignore-file", f"out/{name}")
        assert code2 == 0 and by2["ignored"] == by["ignored"], name
    # the same verdict from the exported VEX alone: through ap-build, and through plain Trivy
    code2, _doc, by2 = scan(cli, old_image, db, "--no-base-ignores", "--vex", "vex.json")
    assert code2 == code == 0 and by2["ignored"] == by["ignored"]
    trivy = Path(sys.executable).parent / "trivy"
    plain = subprocess.run(
        [str(trivy), "image", old_image, "--image-src", "docker", "--cache-dir", str(db), "--skip-db-update",
         "--skip-version-check", "--disable-telemetry", "--quiet", "--scanners", "vuln", "--severity",
         "HIGH,CRITICAL", "--ignore-unfixed", "--exit-code", "1", "--vex", "vex.json"],
        capture_output=True, text=True, cwd=repo,
    )
    assert plain.returncode == 0, plain.stdout + plain.stderr
    unvexed = subprocess.run([*plain.args[:-2]], capture_output=True, text=True, cwd=repo)
    assert unvexed.returncode == 1  # without the document Trivy blocks: the VEX is what settled them


def test_compare_names_the_fixed_and_introduced_findings(cli, old_image, new_image, db, repo):
    res = cli("scan", new_image, "--compare", old_image, "--cache-dir", str(db), "--skip-db-update", "--json")
    assert res.exit_code == 1, res.stderr  # URLLIB3 blocks in the new image
    c = json.loads(res.stdout)["compare"]
    assert [f["id"] for f in c["findings"]["fixed"]] == [REQUESTS]
    assert [f["id"] for f in c["findings"]["introduced"]] == [URLLIB3]
    assert {f["id"] for f in c["findings"]["unchanged"]} == {ZLIB, TAR, GZIP}
    assert {(p["name"], p["old_version"], p["new_version"]) for p in c["packages"]["changed"]} == {
        ("requests", "2.0.0", "2.31.0")}
    assert [p["name"] for p in c["packages"]["added"]] == ["urllib3"] and c["packages"]["removed"] == []
    res = cli("scan", new_image, "--compare", old_image, "--cache-dir", str(db), "--skip-db-update",
              "--report", "markdown=compare.md")
    md = (repo / "compare.md").read_text()
    assert f"#### Compared with `{old_image}`" in md and "**1 fixed**, **1 introduced**, 3 unchanged" in md
    *_, fixed, introduced, verdict = res.stdout.rstrip().splitlines()  # the table's summary, then the verdict
    assert fixed == f"  fixed: {REQUESTS} (requests)" and introduced == f"  introduced: {URLLIB3} (urllib3)"
    assert verdict.startswith("scan failed")


def test_exceptions_check_in_ci(cli, repo):
    (repo / ".trivyignore").write_text(f"{ZLIB} exp:2020-01-01\n{TAR}\n")
    (repo / ".grype.yaml").write_text(f"ignore:\n  - vulnerability: {GZIP}\n    expires-at: 2026-13-01\n")
    res = cli("exceptions", "check", "--json")
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert [(p["line"], "2026-13-01" in p["message"]) for p in doc["problems"]] == [(3, True)]
    assert [(f["id"], f["kind"]) for f in doc["findings"]] == [(ZLIB, "expired")]
    (repo / ".grype.yaml").unlink()
    (repo / ".trivyignore").write_text(f"{TAR} exp:2099-01-01  # build-time only\n")
    assert cli("exceptions", "check").exit_code == 0
    res = cli("exceptions", "check", "--require-reason", "--max-expiry-days", "90")
    assert res.exit_code == 1 and "expiry-too-far" in res.stdout


def test_export_for_an_archive_names_the_packages_themselves(cli, engine, old_image, db, repo, tmp_path):
    """An image archive has no repository digest, so no image PURL: statements name the packages directly."""
    archive = engine.save(old_image, tmp_path / "old.tar")
    (repo / ".grype.yaml").write_text("ignore:\n  - fix-state: fixed\n    package: {type: deb, name: zlib1g}\n"
                                      "    reason: rebuilt weekly\n")
    code, _doc, by = scan(cli, str(archive), db, "--no-base-ignores")
    assert by["ignored"] == {ZLIB}
    res = cli("exceptions", "export", "--format", "openvex", "--image", str(archive), "--cache-dir", str(db),
              "--skip-db-update", "-o", "vex.json")
    assert res.exit_code == 0, res.stderr
    vex = json.loads((repo / "vex.json").read_text())
    jsonschema.validate(vex, OPENVEX_SCHEMA)
    products = {s["vulnerability"]["name"]: [p["@id"] for p in s["products"]] for s in vex["statements"]}
    assert list(products) == [ZLIB, GZIP] and products[ZLIB][0].startswith("pkg:deb/debian/zlib1g@")
    (repo / ".grype.yaml").unlink()
    code2, _doc, by2 = scan(cli, str(archive), db, "--no-base-ignores", "--vex", "vex.json")
    assert code2 == code and by2["ignored"] == {ZLIB, GZIP}  # GZIP: the base's (label) list came along


def test_image_build_puts_a_grype_list_in_the_base_label(cli, engine, debian_base, tmp_path):
    """`ap-build image build --ignore-file .grype.yml`: the base carries Grype's format; a malformed rule stops it."""
    import uuid

    from support.images import TEST_VERSION

    from ap_build.scan.gate import inherited_ignores

    rules = tmp_path / ".grype.yml"
    rules.write_text((Path(__file__).parent / "fixtures" / "python-base.grype.yml").read_text())
    tag = f"localhost/ap-build-test/exc-grype-base:{uuid.uuid4().hex[:8]}"
    args = ["image", "build", "python", "--sources", "debian", "--base", debian_base, "--version", TEST_VERSION,
            "--tag", tag, "--no-reproducible"]  # as the session's base was built: from its cache
    try:
        res = cli(*args, "--ignore-file", str(rules), "--json")
        assert res.exit_code == 0, res.stderr
        labels = engine.inspect(tag)["Config"]["Labels"]
        assert labels[BASE_TRIVYIGNORE_LABEL] == rules.read_text()
        entries, problems = inherited_ignores(labels)
        assert not problems and [e.rule.vulnerability for e in entries] == ["CVE-2099-0001", "CVE-2099-0002"]
    finally:
        engine.remove_image(tag, force=True)
    rules.write_text("ignore:\n  - vulnerability: CVE-1\n    match-type: cpe-match\n")
    res = cli(*args, "--ignore-file", str(rules))
    assert res.exit_code == 2 and ".grype.yml:3: CVE-1: `match-type`" in res.stderr
