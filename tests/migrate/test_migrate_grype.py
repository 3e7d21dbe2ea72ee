"""`ap-build migrate` converts a legacy `.grype.yaml` into `.trivyignore.yaml` (ap_build.scan.convert)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from ap_build.scan.ignores import parse_trivyignore_yaml

from .conftest import git

BASE = "127.0.0.1:5000/ap-build/python-base:1.0.0@sha256:" + "b" * 64
GRYPE = Path(__file__).parents[1] / "scan" / "fixtures"


def commit(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "grype")


def test_grype_file_is_converted_and_deleted_when_all_is_carried(make_repo, cli) -> None:
    repo = make_repo("python_basic")
    (repo / ".grype.yml").write_text((GRYPE / "python-base.grype.yml").read_text())
    commit(repo)
    r = cli("migrate", str(repo), "--yes", "--json", "--base-image", BASE)
    assert r.exit_code == 0, r.stderr
    ops = {o["path"]: o["action"] for o in json.loads(r.stdout)["operations"]}
    assert ops[".trivyignore.yaml"] == "add" and ops[".grype.yml"] == "delete"
    entries, problems = parse_trivyignore_yaml((repo / ".trivyignore.yaml").read_text(), ".trivyignore.yaml")
    assert not problems and not (repo / ".grype.yml").exists()
    assert [(e.id, e.paths, e.expires) for e in entries] == [
        ("CVE-2099-0001", (), None),
        ("CVE-2099-0002", ("usr/local/aws-cli/v2/*/dist/**",), dt.date(2099, 8, 11)),
    ]
    assert entries[1].statement.startswith("False positive / not currently remediable")


def test_what_cannot_be_carried_is_listed_and_the_grype_file_kept(make_repo, cli) -> None:
    repo = make_repo("python_basic")
    (repo / ".grype.yml").write_text((GRYPE / "r-base.grype.yml").read_text())
    commit(repo)
    r = cli("migrate", str(repo), "--yes", "--base-image", BASE)
    assert r.exit_code == 0, r.stderr
    assert (repo / ".grype.yml").exists()
    md = (repo / "MIGRATION.md").read_text()
    assert "not carried over from .grype.yml:15" in md and "upstream-name" in md
    assert "not carried over from .grype.yml:9" in md  # a name without a package type
    ids = [e.id for e in parse_trivyignore_yaml((repo / ".trivyignore.yaml").read_text(), "x.yaml")[0]]
    assert ids == ["CVE-2099-0001", "GHSA-2099-aaaa-bbbb"]
