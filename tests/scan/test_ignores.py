"""Ignore-file parsing: both formats, file:line for malformed entries, which then ignore nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ap_build.errors import UsageError
from ap_build.scan.ignores import (
    discover_ignore_files,
    load_ignore_file,
    parse_trivyignore,
    parse_trivyignore_yaml,
)


def test_trivyignore_ids_comments_expiry_and_problems():
    text = (
        "# base image exceptions\n"
        "\n"
        "CVE-2024-0001\n"
        "CVE-2024-0002 exp:2027-01-31\n"
        "GHSA-abcd-efgh-ijkl   # trailing comment\n"
        "CVE-2024-0003 exp:2027-02-30\n"
        "CVE-2024-0004 because reasons\n"
        "exp:2027-01-01\n"
        "aws-access-key-id\n"
    )
    entries, problems = parse_trivyignore(text, "repo/.trivyignore")
    assert [(e.id, e.line, e.expires) for e in entries] == [
        ("CVE-2024-0001", 3, None),
        ("CVE-2024-0002", 4, dt.date(2027, 1, 31)),
        ("GHSA-abcd-efgh-ijkl", 5, None),
        ("aws-access-key-id", 9, None),
    ]
    assert [p.where for p in problems] == ["repo/.trivyignore:6", "repo/.trivyignore:7", "repo/.trivyignore:8"]
    assert "exp:YYYY-MM-DD" in problems[0].message and "2027-02-30" in problems[0].message
    assert "because reasons" in problems[1].message


def test_trivyignore_yaml_with_line_numbers():
    text = (
        "vulnerabilities:\n"
        "  - id: CVE-2024-0001\n"
        "    statement: not reachable from our code\n"
        "    expired_at: 2027-01-01\n"
        "  - id: CVE-2024-0002\n"
        "    paths: ['usr/lib/python3*/**']\n"
        "  - statement: forgot the id\n"
        "  - id: CVE-2024-0003\n"
        "    expired_at: soon\n"
        "  - id: CVE-2024-0004\n"
        "    pkg: typo\n"
        "secrets:\n"
        "  - id: aws-access-key-id\n"
        "    paths: ['/opt/app/.env']\n"
        "other: []\n"
    )
    entries, problems = parse_trivyignore_yaml(text, ".trivyignore.yaml")
    assert [(e.id, e.line, e.section) for e in entries] == [
        ("CVE-2024-0001", 2, "vulnerabilities"),
        ("CVE-2024-0002", 5, "vulnerabilities"),
        ("aws-access-key-id", 13, "secrets"),
    ]
    assert entries[0].expires == dt.date(2027, 1, 1) and entries[0].statement == "not reachable from our code"
    assert entries[1].paths == ("usr/lib/python3*/**",)
    assert [(p.line, p.message.split(" ")[0]) for p in problems] == [
        (7, "entry"),
        (9, "CVE-2024-0003:"),  # the expired_at line itself
        (10, "CVE-2024-0004:"),
        (15, "unknown"),
    ]


def test_invalid_yaml_is_one_problem_with_a_line():
    entries, problems = parse_trivyignore_yaml("vulnerabilities:\n  - id: [unclosed\n", "x.yaml")
    assert entries == [] and len(problems) == 1 and problems[0].line >= 2


def test_discovery_and_unreadable_file(tmp_path: Path):
    assert discover_ignore_files(tmp_path) == []
    (tmp_path / ".trivyignore").write_text("CVE-1\n")
    (tmp_path / ".trivyignore.yaml").write_text("vulnerabilities: [{id: CVE-2}]\n")
    found = discover_ignore_files(tmp_path)
    assert [p.name for p in found] == [".trivyignore", ".trivyignore.yaml"]
    assert [e.id for f in found for e in load_ignore_file(f)[0]] == ["CVE-1", "CVE-2"]
    with pytest.raises(UsageError, match="missing"):
        load_ignore_file(tmp_path / "missing")
