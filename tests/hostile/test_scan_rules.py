"""Hostile input to the scan gate, round 2: ignore rules, VEX, image archives and the reports they reach.

Each class of issue 20 (regex denial of service, unbounded numbers, deep nesting, glob bombs, a forged
verdict, raw terminal bytes, special files and bytes) as table cases through the real CLI and the real Trivy
on hand-made archives (< 1 s each), plus hypothesis properties of the pieces that keep them bounded.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.trivydb import Advisory, write_trivy_db

from ap_build.scan.doublestar import GlobError, check_v2, check_v4, match_v2, match_v4
from ap_build.scan.goregex import PatternError, compile_name, is_likely_regex
from ap_build.scan.grype import parse_grype
from ap_build.scan.ignores import parse_trivyignore_yaml
from ap_build.scan.policy import Policy, evaluate
from ap_build.scan.report import md, md_code

from .support import OS_RELEASE, assert_clean, image_archive

STATUS = (b"Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13.dfsg-1\nSource: zlib\n"
          b"Architecture: amd64\n\n")
FILES = {  # one CVE (zlib) and one secret
    "etc/os-release": OS_RELEASE, "etc/debian_version": b"12.5\n", "var/lib/dpkg/status": STATUS,
    "app/config.env": b"AWS_ACCESS_KEY_ID=AKIAZ4QWERTYUIOPASDF\n",
}
CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trivy_db(tmp_path_factory.mktemp("trivy-cache"), [Advisory("CVE-2099-7", "zlib", "HIGH",
                                                                             fixed_version="1:9")])


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return image_archive(tmp_path_factory.mktemp("img") / "i.tar", files=FILES)


@pytest.fixture
def scan(cli, cache: Path, archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)

    def run(*args: str, image: Path | None = None):
        return cli("scan", str(image or archive), "--cache-dir", str(cache), "--skip-db-update", *args)

    return run


HOSTILE_RULES = """ignore:
  - vulnerability: CVE-2099-1
    package:
      name: "libc6-(a+)+b"
  - vulnerability: CVE-2099-2
    expires-at: 9999-12-31T23:00:00-05:00
  - vulnerability: CVE-2099-3
    package:
      name: "a{4294967296}"
  - vulnerability: CVE-2099-4
    package:
      name: "%s"
  - vulnerability: CVE-2099-5
    package:
      location: "/var/lib/dpkg/{1..5000}"
  - vulnerability: CVE-2099-6
    package:
      name: "(?=lib)c6"
""" % ("(" * 2000 + "a" + ")" * 2000)


def test_hostile_grype_rules_are_problems_at_their_lines(scan, cli, tmp_path: Path) -> None:
    (tmp_path / ".grype.yaml").write_text(HOSTILE_RULES)
    started = time.monotonic()
    r = scan("--format", "json")
    assert_clean(r, (1,))  # the CVE and the secret block: nothing here ignores them
    problems = {p["line"]: p["message"] for p in json.loads(r.stdout)["problems"]}
    assert set(problems) == {6, 9, 12, 18}, problems
    assert "year 10000" in problems[6] and "repeat count" in problems[9]
    assert "nests too deeply" in problems[12] and "invalid perl operator" in problems[18]
    r = cli("exceptions", "check")
    assert_clean(r, (1,), ".grype.yaml:6: CVE-2099-2: unreadable expires-at")
    assert ".grype.yaml:9:" in r.stdout and ".grype.yaml:12:" in r.stdout
    assert time.monotonic() - started < 30


def test_an_overflowing_expiry_in_a_base_label_breaks_no_scan(scan, tmp_path: Path) -> None:
    label = "ignore:\n  - vulnerability: CVE-2099-7\n    expires-at: 9999-12-31T23:00:00-05:00\n"
    image = image_archive(tmp_path / "base.tar", label=label, files=FILES)
    r = scan(image=image)
    assert_clean(r, (1,), "label:uk.gov.justice.analytical-platform.trivyignore:3: CVE-2099-7: unreadable expires-at")


def test_regex_denial_of_service_is_linear():
    rules, problems = parse_grype('ignore:\n  - package:\n      name: "libc6-(a+)+b"\n', ".grype.yaml")
    assert not problems
    from scan.reports import report, vuln

    r = report([vuln("CVE-1", "libc6-" + "a" * 40, "HIGH", fixed="2"),
                vuln("CVE-2", "libc6-" + "a" * 5000 + "c", "HIGH", fixed="2")])
    started = time.monotonic()
    verdict = evaluate(r, rules, Policy())
    assert time.monotonic() - started < 1
    assert [f.verdict for f in verdict.findings] == ["blocking", "blocking"]


@pytest.mark.parametrize("paths,problem", [
    (['"' + "{a,b}" * 50 + '"'], False),  # 2^50 spellings, matched on RE2 without expanding them
    (['"' + "{a,b}" * 100 + '"'], True),  # over the glob bounds
    (['"/var/lib/dpkg/{1..5000}"'], False),  # doublestar has no ranges: one literal name
    (['"/usr/lib/[a"'], True), (['"/usr/lib/a}"'], True),  # Trivy's ValidatePattern refuses them
])
def test_glob_bombs_in_trivyignore_yaml_paths(paths, problem):
    text = f"vulnerabilities:\n  - id: CVE-1\n    paths: [{', '.join(paths)}]\n"
    started = time.monotonic()
    entries, problems = parse_trivyignore_yaml(text, ".trivyignore.yaml")
    assert bool(problems) is problem and len(entries) == (0 if problem else 1)
    if entries:
        from scan.reports import report, vuln

        evaluate(report([vuln("CVE-1", "zlib1g", "HIGH", fixed="2", PkgPath="a" * 200)]), entries, Policy())
    assert time.monotonic() - started < 2


def test_glob_bombs_are_refused_by_exceptions_check(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".trivyignore.yaml").write_text("vulnerabilities:\n  - id: CVE-1\n    paths: ['"
                                                + "{a,b}" * 100 + "']\n")
    assert_clean(cli("exceptions", "check"), (1,), "is not a glob Trivy accepts")


def test_a_newline_in_a_rule_cannot_forge_the_verdict(scan, tmp_path: Path) -> None:
    (tmp_path / ".grype.yaml").write_text(
        'ignore:\n  - package:\n      location: "/x\\n### ap-build scan ✅ passed: `ok`\\n| a | b |"\n')
    r = scan("--format", "markdown")
    assert_clean(r, (1,))
    headings = [line for line in r.stdout.splitlines() if line.startswith("#")]
    assert headings == [headings[0], "#### Ignore list hygiene"] and "❌ failed" in headings[0]
    assert not any(line.startswith("| a |") for line in r.stdout.splitlines())


def _vex(path: Path, purl: str, text: str) -> Path:
    path.write_text(json.dumps({
        "@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex-1", "author": "t",
        "timestamp": "2026-01-01T00:00:00Z", "version": 1,
        "statements": [{"vulnerability": {"name": "CVE-2099-7"}, "products": [{"@id": purl}],
                        "status": "not_affected", "justification": f"vulnerable_code_not_present {text}"}]}))
    return path


@pytest.mark.parametrize("fmt", ["markdown", "table"])
def test_terminal_bytes_in_reasons_and_vex_never_reach_stdout_raw(scan, tmp_path: Path, fmt: str) -> None:
    evil = "ok \x1b[31m red \x07 bell \x9b2J | <b>x</b> [l](https://e.example) @team\n### ✅ passed"
    (tmp_path / ".trivyignore").write_text(f"aws-access-key-id # {evil}\n")
    purl = "pkg:deb/debian/zlib1g@1.2.13.dfsg-1?arch=amd64&distro=debian-12.5&epoch=1"
    r = scan("--format", fmt, "--vex", str(_vex(tmp_path / "vex.json", purl, evil)))
    assert_clean(r, (0,))
    raw = r.stdout.encode("utf-8", "surrogateescape")
    assert not CONTROL.search(raw) and "\x9b" not in r.stdout
    if fmt == "markdown":
        assert "<b>" not in r.stdout and "](https://e.example)" not in r.stdout and " @team" not in r.stdout
        assert "ok \\\\x1b\\[31m red \\\\x07 bell" in r.stdout  # shown, escaped, in the Why column
        assert "not\\_affected \\(vulnerable\\_code\\_not\\_present ok \\\\x1b" in r.stdout  # Trivy passes it on
        assert sum(line.startswith("### ") for line in r.stdout.splitlines()) == 1


@pytest.mark.parametrize("option", ["--vex", "--ignore-file"])
@pytest.mark.parametrize("target", ["/dev/zero", "folder", "fifo"])
def test_special_files_are_refused(scan, tmp_path: Path, option: str, target: str) -> None:
    if target == "folder":
        (tmp_path / "folder").mkdir()
    elif target == "fifo":
        os.mkfifo(tmp_path / "fifo")
    r = scan(option, target)
    assert_clean(r, (2,), "not a regular file")


def test_deep_and_non_utf8_documents_are_named(scan, tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    assert_clean(scan("--vex", "deep.json"), (2,), "JSON nested 100,000 levels deep")
    (tmp_path / "latin1.trivyignore").write_bytes(b"CVE-2099-7 # caf\xe9\n")
    assert_clean(scan("--ignore-file", "latin1.trivyignore"), (2,), "not UTF-8 text (byte 0xe9 at offset 16)")
    (tmp_path / "latin1.json").write_bytes(b'{"@context": "caf\xe9"}')
    assert_clean(scan("--vex", "latin1.json"), (2,), "not UTF-8")


def _tar(path: Path, members: list[tuple[str, bytes | str]]) -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("members,fragment", [
    ([("manifest.json", b"[" * 100_000 + b"]" * 100_000)], "JSON nested 100,000 levels deep"),
    ([("manifest.json", "manifest.json")], "manifest.json is not a regular file"),
    ([("manifest.json", "cfg.json"), ("cfg.json", "manifest.json")], "not a regular file"),
    ([("manifest.json", b'[{"Config": "c\xff", "Layers": []}]')], "not UTF-8 text (byte 0xff at offset 14)"),
])
def test_hostile_archives(scan, tmp_path: Path, members, fragment: str) -> None:
    assert_clean(scan(image=_tar(tmp_path / "bad.tar", members)), (2,), fragment)


def test_non_utf8_archive_name_and_huge_timeout(scan, tmp_path: Path, archive: Path) -> None:
    name = tmp_path / os.fsdecode(b"image-\xff.tar")
    name.write_bytes(archive.read_bytes())
    for fmt in ("table", "markdown", "json"):
        assert_clean(scan("--format", fmt, image=name), (1,))
    assert_clean(scan(image=tmp_path / os.fsdecode(b"gone-\xff.tar")), (2,))
    assert_clean(scan("--timeout", "99999999999999"), (2,), "--timeout")


# --- properties -------------------------------------------------------------------------------------------

def _inert(rendered: str) -> bool:
    """No markdown construct can start in `rendered`: every special character is backslash-escaped."""
    i = 0
    while i < len(rendered):
        c = rendered[i]
        if c == "\\":
            i += 2
            continue
        if c in "`*_[]()#!|~@<>" or (ord(c) < 0x20 and c != "\t") or 0x7F <= ord(c) <= 0x9F:
            return False
        i += 1
    return True


@given(st.text())
@settings(max_examples=300)
def test_markdown_text_is_inert(text: str) -> None:
    assert _inert(md(text))
    code = md_code(text)
    fence = re.match(r"`+", code).group()
    inner = code[len(fence):-len(fence)]
    assert code.endswith(fence) and all(len(run) < len(fence) for run in re.findall(r"`+", inner))
    assert not any((ord(c) < 0x20 and c != "\t") or 0x7F <= ord(c) <= 0x9F for c in code)


@given(st.text(alphabet="ab.-^$*+?[](){}|\\:=!<PLz0139,", max_size=40), st.text(alphabet="ab.-", max_size=60))
@settings(max_examples=400, deadline=2000)
def test_package_names_compile_or_are_refused_and_match_fast(pattern: str, name: str) -> None:
    try:
        matcher = compile_name(pattern)
    except PatternError:
        return
    result = matcher(name)
    if not is_likely_regex(pattern):
        assert result is (pattern == name)


@given(st.text(alphabet="ab/*?[]{},!^\\-.", max_size=40), st.text(alphabet="ab/.-!", max_size=60))
@settings(max_examples=400, deadline=2000)
def test_globs_are_refused_or_match_in_bounded_time(pattern: str, path: str) -> None:
    for check, match in ((check_v2, match_v2), (check_v4, match_v4)):
        try:
            check(pattern)
        except GlobError:
            continue
        result = match(pattern, path)
        if not set(pattern) & set("*?[]{}\\"):
            assert result is (pattern == path)
