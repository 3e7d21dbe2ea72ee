"""`ap-build scan` / `ap-build sbom` end to end: the REAL Trivy over real images built FROM debian_base,
with a vulnerability DB written by the test (tests/support/trivydb.py) whose advisories target packages
really installed in the image (versions read with dpkg-query).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import jsonschema
import pytest
from support.images import build_cached, source_versions, user_image_dockerfile
from support.trivydb import Advisory, write_trivy_db

from ap_build.platform import BASE_TRIVYIGNORE_LABEL
from ap_build.scan.gate import BASE_IGNORES_SOURCE

# end-to-end: its lane (tests/conftest.py ENGINE_LANES) runs on one xdist worker at a time
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine")]

FIXABLE_HIGH = "CVE-2099-0001"  # zlib, HIGH, fixed
UNFIXED_CRITICAL = "CVE-2099-0002"  # glibc (libc6, libc-bin), CRITICAL, no fix
FIXABLE_LOW = "CVE-2099-0003"  # tar, LOW, fixed
BASE_IGNORED = "CVE-2099-0004"  # gzip, HIGH, fixed: ignored by the base image's own list
LIB_HIGH = "GHSA-2099-aaaa-bbbb"  # requests (pip), HIGH, fixed
BASE_STALE = "CVE-2099-0999"  # in the base list, matches nothing
BASE_MALFORMED = "CVE-2099-0998 exp:someday"  # in the base list, line 4: reported, ignores nothing
AWS_KEY = "aws_access_key_id = AKIA2E0A8F3B244C9986\naws_secret_access_key = 9Fq2TzLwQp3xVb7nRk8sYd1uHc4mJe6gAo5iNt0E\n"
SARIF_SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text())


@pytest.fixture(scope="session")
def scan_base(engine, debian_base) -> str:
    """A stand-in runtime base carrying its ignore list the way `ap-build image build` does (a label)."""
    ignore = f"# base image exceptions\n{BASE_IGNORED}  # gzip: not reachable\n{BASE_STALE}\n{BASE_MALFORMED}\n"
    return build_cached(engine, "scan-base", f"FROM {debian_base}\n", labels={BASE_TRIVYIGNORE_LABEL: ignore})


@pytest.fixture(scope="session")
def user_image(engine, scan_base) -> str:
    """A user image FROM that base, with one Python package for library findings."""
    extra = "COPY requests-2.0.0.dist-info /usr/lib/python3/dist-packages/requests-2.0.0.dist-info\n"
    meta = "Metadata-Version: 2.1\nName: requests\nVersion: 2.0.0\n"
    return build_cached(
        engine, "scan-user", user_image_dockerfile(scan_base, extra), {"requests-2.0.0.dist-info/METADATA": meta}
    )


@pytest.fixture(scope="session")
def secret_image(engine, debian_base) -> str:
    return build_cached(
        engine,
        "scan-secret",
        user_image_dockerfile(debian_base, "COPY credentials.env /opt/analyticalplatform/credentials.env\n"),
        {"credentials.env": AWS_KEY},
    )


@pytest.fixture(scope="session")
def user_archive(engine, user_image, tmp_path_factory) -> Path:
    return engine.save(user_image, tmp_path_factory.mktemp("archives") / "user.tar")


@pytest.fixture(scope="session")
def advisories(engine, user_image) -> list[Advisory]:
    """Advisories for packages installed in the image: fixed version = installed source version + '+apfix1'."""
    versions = source_versions(engine, user_image)
    return [
        Advisory(FIXABLE_HIGH, "zlib", "HIGH", fixed_version=versions["zlib"] + "+apfix1"),
        Advisory(UNFIXED_CRITICAL, "glibc", "CRITICAL"),
        Advisory(FIXABLE_LOW, "tar", "LOW", fixed_version=versions["tar"] + "+apfix1"),
        Advisory(BASE_IGNORED, "gzip", "HIGH", fixed_version=versions["gzip"] + "+apfix1"),
        Advisory(LIB_HIGH, "requests", "HIGH", fixed_version="2.31.0", ecosystem="pip"),
    ]


@pytest.fixture
def db(tmp_path, advisories) -> Path:
    return write_trivy_db(tmp_path / "trivy-cache", advisories)


def scan_json(cli, target, db: Path, *args: str):
    res = cli("scan", str(target), "--cache-dir", str(db), "--skip-db-update", "--json", *args)
    assert res.exit_code in (0, 1), res.stderr
    doc = json.loads(res.stdout)
    by = {}
    for f in doc["findings"]:
        by.setdefault(f["verdict"], set()).add(f["id"])
    return res.exit_code, doc, by


def test_fixable_high_blocks_and_everything_is_reported(cli, user_archive, db, repo):
    code, doc, by = scan_json(cli, user_archive, db)
    assert code == 1 and doc["verdict"] == "failed"
    assert by["blocking"] == {FIXABLE_HIGH, LIB_HIGH}
    assert by["ignored"] == {BASE_IGNORED}  # inherited from the base image's list, no network
    assert by["informational"] == {UNFIXED_CRITICAL, FIXABLE_LOW}
    zlib = next(f for f in doc["findings"] if f["id"] == FIXABLE_HIGH)
    assert zlib["package"] == "zlib1g" and zlib["fixed_version"].endswith("+apfix1") and zlib["status"] == "fixed"
    assert doc["artifact"]["os"].split(".")[0] in ("debian 12", "debian 13")  # the base's suite: bookworm or trixie


def test_same_id_in_trivyignore_passes_low_never_blocks_and_stale_is_reported(cli, user_archive, db, repo):
    (repo / ".trivyignore").write_text(f"{FIXABLE_HIGH}\n{LIB_HIGH} exp:2099-01-01\nCVE-2099-0777\n")
    code, doc, by = scan_json(cli, user_archive, db)
    assert code == 0 and doc["passed"] is True
    assert "blocking" not in by
    assert FIXABLE_LOW in by["informational"]
    states = {(i["id"], i["source"].rsplit("/", 1)[-1]): i["state"] for i in doc["ignores"]}
    assert states[("CVE-2099-0777", ".trivyignore")] == "stale"
    assert states[(BASE_STALE, BASE_IGNORES_SOURCE)] == "stale"  # the base list's own stale entry, named by source
    assert states[(FIXABLE_HIGH, ".trivyignore")] == "active"
    base = next(i for i in doc["ignores"] if i["id"] == BASE_IGNORED)
    assert base["source"] == BASE_IGNORES_SOURCE and base["line"] == 2 and base["matched"] == 1
    # the base list's malformed line is reported where it is (label, line 4) and ignores nothing
    assert [(p["source"], p["line"]) for p in doc["problems"]] == [(BASE_IGNORES_SOURCE, 4)]
    assert doc["artifact"]["ignore_sources"][-1] == BASE_IGNORES_SOURCE


def test_expired_entry_blocks_again(cli, user_archive, db, repo):
    yesterday = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)).isoformat()  # noqa: UP017
    (repo / ".trivyignore").write_text(f"{FIXABLE_HIGH} exp:{yesterday}\n{LIB_HIGH}\n")
    code, doc, by = scan_json(cli, user_archive, db)
    assert code == 1 and by["blocking"] == {FIXABLE_HIGH}
    assert "expired" in next(f["reason"] for f in doc["findings"] if f["id"] == FIXABLE_HIGH)
    assert next(i for i in doc["ignores"] if i["id"] == FIXABLE_HIGH)["state"] == "expired"


def test_unfixed_critical_blocks_only_with_include_unfixed(cli, user_archive, db, repo):
    (repo / ".trivyignore").write_text(f"{FIXABLE_HIGH}\n{LIB_HIGH}\n")
    assert scan_json(cli, user_archive, db)[0] == 0
    code, _doc, by = scan_json(cli, user_archive, db, "--include-unfixed")
    assert code == 1 and by["blocking"] == {UNFIXED_CRITICAL}


def test_base_ignores_can_be_switched_off_and_vuln_type_library(cli, user_archive, db, repo):
    code, _doc, by = scan_json(cli, user_archive, db, "--no-base-ignores")
    assert code == 1 and BASE_IGNORED in by["blocking"]
    code, _doc, by = scan_json(cli, user_archive, db, "--vuln-type", "library")
    assert code == 1 and by["blocking"] == {LIB_HIGH} and FIXABLE_HIGH in by["informational"]
    code, doc, by = scan_json(cli, user_archive, db, "--vuln-type", "library", "--skip-dir", "/usr/lib/python3")
    assert code == 0 and LIB_HIGH not in {f["id"] for f in doc["findings"]}
    assert doc["artifact"]["skip_dirs"] == ["/usr/lib/python3"] and doc["artifact"]["secrets_scanned"] is True


def test_engine_reference_with_sarif_and_markdown_reports(cli, user_image, db, repo):
    res = cli(
        "scan",
        user_image,
        "--cache-dir",
        str(db),
        "--format",
        "sarif",
        "--output",
        "out/scan.sarif",
        "--report",
        "markdown=summary.md",
        "--report",
        "json=scan.json",
    )
    assert res.exit_code == 1, res.stderr
    sarif = json.loads((repo / "out/scan.sarif").read_text())
    jsonschema.validate(sarif, SARIF_SCHEMA)
    assert {r["ruleId"] for r in sarif["runs"][0]["results"] if r["level"] == "error"} == {FIXABLE_HIGH, LIB_HIGH}
    suppressed = {r["ruleId"] for r in sarif["runs"][0]["results"] if r.get("suppressions")}
    assert suppressed == {BASE_IGNORED}  # the base list read through the engine (no archive, no network)
    assert (repo / "summary.md").read_text().startswith("### ap-build scan ❌ failed")
    assert json.loads((repo / "scan.json").read_text())["artifact"]["type"] == "engine-image"
    assert "scan failed" in res.stderr and res.stdout == ""


def test_planted_secret_blocks(cli, secret_image, tmp_path, repo):
    clean_db = write_trivy_db(tmp_path / "empty-db", [])
    res = cli("scan", secret_image, "--cache-dir", str(clean_db), "--json")
    assert res.exit_code == 1, res.stderr
    doc = json.loads(res.stdout)
    blocking = [f for f in doc["findings"] if f["verdict"] == "blocking"]
    assert {f["id"] for f in blocking} == {"aws-access-key-id", "aws-secret-access-key"}
    assert all(f["kind"] == "secret" and f["path"].endswith("credentials.env") for f in blocking)
    assert cli("scan", secret_image, "--cache-dir", str(clean_db), "--no-secrets", "--json").exit_code == 0


def test_corrupt_and_missing_db_exit_2_with_what_to_do(cli, user_archive, tmp_path, repo):
    corrupt = write_trivy_db(tmp_path / "corrupt", [])
    (corrupt / "db/trivy.db").write_bytes(b"\0not a bbolt file" * 512)
    res = cli("scan", str(user_archive), "--cache-dir", str(corrupt), "--skip-db-update")
    assert res.exit_code == 2 and "unreadable" in res.stderr and "Traceback" not in res.stderr
    empty = tmp_path / "no-db"
    res = cli("scan", str(user_archive), "--cache-dir", str(empty), "--skip-db-update")
    assert res.exit_code == 2 and "no Trivy vulnerability DB" in res.stderr
    assert "--skip-db-update" in res.stderr and "--download-db-only" in res.stderr
    res = cli("scan", str(user_archive), "--cache-dir", str(empty), "--db-repository", "127.0.0.1:9/nowhere/db:2")
    assert res.exit_code == 2 and "could not be downloaded from 127.0.0.1:9/nowhere/db:2" in res.stderr
    assert "--skip-db-update" in res.stderr  # the hint says exactly what to do offline


def test_usage_errors_exit_2(cli, user_archive, db, repo):
    assert cli("scan", str(user_archive), "--severity", "HIGH,BAD").exit_code == 2
    res = cli("scan", str(user_archive), "--cache-dir", str(db), "--ignore-file", "nope.trivyignore")
    assert res.exit_code == 2 and "nope.trivyignore" in res.stderr
    res = cli("scan", "localhost/ap-build-test/none:0", "--cache-dir", str(db))
    assert res.exit_code == 2 and "image localhost/ap-build-test/none:0 not found in the engine" in res.stderr
    res = cli("scan", "missing.tar", "--cache-dir", str(db))
    assert res.exit_code == 2 and "missing.tar: no such image archive" in res.stderr
    (repo / "not-an-image.tar").write_bytes(b"plain bytes, not a tar archive")
    res = cli("scan", "not-an-image.tar", "--cache-dir", str(db))
    assert res.exit_code == 2 and "not-an-image.tar: not a readable image archive" in res.stderr
    res = cli("scan", str(user_archive), "--trivy", "/nonexistent/trivy")
    assert res.exit_code == 2 and "Trivy not found" in res.stderr


def test_sbom_cyclonedx_and_spdx(cli, user_archive, repo):
    res = cli("sbom", str(user_archive), "--output", "sbom.cdx.json")
    assert res.exit_code == 0, res.stderr
    cdx = json.loads((repo / "sbom.cdx.json").read_text())
    assert cdx["bomFormat"] == "CycloneDX"
    names = {c["name"] for c in cdx["components"]}
    assert {"zlib1g", "libc6", "requests"} <= names
    res = cli("sbom", str(user_archive), "--format", "spdx")
    assert res.exit_code == 0, res.stderr
    spdx = json.loads(res.stdout)
    assert spdx["spdxVersion"].startswith("SPDX-") and any(p["name"] == "requests" for p in spdx["packages"])


def test_sbom_of_engine_image(cli, user_image, repo):
    res = cli("sbom", user_image, "-o", "bom.json")
    assert res.exit_code == 0, res.stderr
    cdx = json.loads((repo / "bom.json").read_text())
    assert {"zlib1g", "requests"} <= {c["name"] for c in cdx["components"]}
    assert cli("sbom", user_image, "--format", "xml").exit_code == 2


def test_console_script_writes_everything_before_its_fast_exit(user_archive, user_image, db, repo):
    """The installed `ap-build` skips the interpreter's teardown (os._exit): nothing may be lost by it."""
    import functools
    import os
    import subprocess
    import sys

    ap_build = str(Path(sys.executable).parent / "ap-build")
    # block-buffered pipes, as for a CI job reading the output (this machine sets PYTHONUNBUFFERED)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    run = functools.partial(subprocess.run, capture_output=True, text=True, cwd=repo, env=env)
    args = [str(user_archive), "--cache-dir", str(db), "--skip-db-update", "--report", "sarif=out/s.sarif"]
    res = run([ap_build, "scan", *args, "--json"])
    assert res.returncode == 1, res.stderr
    assert json.loads(res.stdout)["verdict"] == "failed"  # the whole document reached the pipe
    jsonschema.validate(json.loads((repo / "out/s.sarif").read_text()), SARIF_SCHEMA)
    assert res.stderr.strip().splitlines()[-1].startswith("scan failed")
    table = run([ap_build, "scan", *args])
    assert table.returncode == 1 and table.stdout.rstrip().splitlines()[-1].startswith("scan failed")
    structure = run([ap_build, "test", user_image, "--json"])
    assert structure.returncode == 0 and json.loads(structure.stdout)["passed"] is True  # print()ed, then flushed
    missing = run([ap_build, "scan", "missing.tar"])
    assert missing.returncode == 2 and missing.stderr.startswith("error: missing.tar: no such image archive")
