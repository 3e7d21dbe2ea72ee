"""Hostile input to `scan`, `sbom` and `test`: markup, bad dates, hostile archives, outputs in odd places.

The REAL Trivy scans small hand-made archives against an empty DB written by the test (< 1 s each).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.trivydb import write_trivy_db

from .support import assert_clean, image_archive, snapshot


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trivy_db(tmp_path_factory.mktemp("trivy-cache"), [])


@pytest.fixture
def scan(cli, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # no stray .trivyignore from the checkout

    def run(archive: Path, *args: str):
        return cli("scan", str(archive), "--cache-dir", str(cache), "--skip-db-update", *args)

    return run


def test_markup_in_ignore_file_lines_is_printed_as_typed(scan, tmp_path: Path) -> None:
    (tmp_path / "[red]ignores").write_text("CVE-1 [red]\n[/]\n[bold]x\x1b[31m\n")
    r = scan(image_archive(tmp_path / "i.tar"), "--ignore-file", str(tmp_path / "[red]ignores"))
    assert_clean(r, (0,), "[red]ignores:2: '[/]' is not a vulnerability/secret ID")
    assert "CVE-1: unexpected '[red]'" in r.stdout
    assert "\x1b" not in r.stdout  # a control character is shown escaped, not obeyed
    assert "scan passed" in r.stdout


def test_markup_in_the_base_images_ignore_label(scan, tmp_path: Path) -> None:
    r = scan(image_archive(tmp_path / "i.tar", label="CVE-2099-1 [/]\n[bold]\n"))
    assert_clean(r, (0,), "label:uk.gov.justice.analytical-platform.trivyignore:2: '[bold]'")


def test_markup_in_yaml_ignore_file(scan, tmp_path: Path) -> None:
    (tmp_path / ".trivyignore.yaml").write_text('vulnerabilities:\n  - id: "[/]"\n    statement: "[bold]"\n')
    r = scan(image_archive(tmp_path / "i.tar"), "--format", "json")
    assert_clean(r, (0,))
    assert json.loads(r.stdout)["passed"] is True


def test_impossible_expiry_date(scan, tmp_path: Path) -> None:
    """A malformed entry is reported (and ignores nothing); it is not an internal error."""
    (tmp_path / ".trivyignore.yaml").write_text("vulnerabilities:\n  - id: CVE-1\n    expired_at: 2026-13-01\n")
    assert_clean(scan(image_archive(tmp_path / "i.tar")), (0, 1, 2), ".trivyignore.yaml:3: CVE-1")


def test_markup_in_the_archive_path(scan, tmp_path: Path) -> None:
    r = scan(image_archive(tmp_path / "[red]image[bold][x].tar"))
    assert_clean(r, (0,), "[red]image[bold][x].tar")


@pytest.mark.parametrize("config", [5, None, ["x"], "../../etc/passwd", "missing.json"])
def test_hostile_manifest_config(scan, tmp_path: Path, config: object) -> None:
    r = scan(image_archive(tmp_path / "bad.tar", config=config))
    assert_clean(r, (2,), "bad.tar")


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--severity", "[/]"], "--severity"),
        (["--format", "[bold]"], "--format '[bold]'"),
        (["--vuln-type", "x\ny"], "--vuln-type"),
        (["--report", "[/]=x"], "--report '[/]=x'"),
        (["--report", "json="], "expected FORMAT=FILE"),
        (["--warn-expiry-days", "-1"], "--warn-expiry-days"),
    ],
)
def test_bad_options(scan, tmp_path: Path, args: list[str], fragment: str) -> None:
    assert_clean(scan(image_archive(tmp_path / "i.tar"), *args), (2,), fragment)


def test_output_under_a_regular_file(scan, tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("keep")
    r = scan(image_archive(tmp_path / "i.tar"), "-o", str(tmp_path / "plain" / "report.txt"))
    assert_clean(r, (2,), "is a file where a folder is needed")
    assert (tmp_path / "plain").read_text() == "keep"


def test_report_through_a_planted_symlink_is_refused(scan, tmp_path: Path,
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    """A report inside the working directory cannot be sent out of it by a symlink in the checkout."""
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "victim").write_text("precious")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "r.json").symlink_to(outside / "victim")
    before = snapshot(outside)
    for report in (f"json={tmp_path / 'out' / 'r.json'}", "sarif=out/r.json"):
        r = scan(image_archive(tmp_path / "i.tar"), "--report", report)
        assert_clean(r, (2,), "refused")
    assert snapshot(outside) == before


def test_report_mode_kept_and_new_reports_0644(scan, tmp_path: Path) -> None:
    archive = image_archive(tmp_path / "i.tar")
    assert_clean(scan(archive, "-f", "json", "-o", str(tmp_path / "new.json")), (0,))
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o644
    (tmp_path / "old.md").write_text("old")
    (tmp_path / "old.md").chmod(0o640)
    assert_clean(scan(archive, "--report", f"markdown={tmp_path / 'old.md'}"), (0,))
    assert (tmp_path / "old.md").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "old.md").read_text() != "old"


def test_sbom_output_under_a_regular_file(cli, cache: Path, tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("keep")
    r = cli("sbom", str(image_archive(tmp_path / "i.tar")), "-o", str(tmp_path / "plain" / "x" / "sbom.json"),
            "--cache-dir", str(cache))
    assert_clean(r, (2,), "is a file where a folder is needed")


@pytest.mark.parametrize("name", ["[/]", "x\ny", "../../[bold]"])
def test_structure_test_config_that_does_not_exist(cli, tmp_path: Path, name: str) -> None:
    r = cli("test", "hostile:1", "--config", str(tmp_path / name))
    assert_clean(r, (2,))
