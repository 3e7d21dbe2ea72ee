"""The one YAML loader (ap_build/yamlpos.py): manifests (`load`) and ignore files (`load_all`) share its bounds."""

from __future__ import annotations

import pytest

from ap_build import yamlpos
from ap_build.scan.grype import parse_grype
from ap_build.scan.ignores import parse_trivyignore_yaml

LAUGHS = "\n".join(["a0: &a0 [" + ", ".join(["x"] * 50) + "]"]
                   + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 50)}]" for i in range(1, 4)]) + "\n"
DEEP = "a: &deep " + "[" * (yamlpos.MAX_DEPTH + 2) + "]" * (yamlpos.MAX_DEPTH + 2) + "\n"
RECURSIVE = "a: &a [*a]\n"


@pytest.mark.parametrize(("text", "expected"), [
    (LAUGHS, "aliases expand this value beyond"),
    (DEEP, f"deeper than {yamlpos.MAX_DEPTH} levels"),
    (RECURSIVE, "refers to the value that contains it"),
    ("a: {[1]: 2}\n", "key"),
])
def test_both_readings_refuse_the_same_documents(text: str, expected: str) -> None:
    with pytest.raises(yamlpos.Refused) as manifest:
        yamlpos.load(text)
    with pytest.raises(yamlpos.YamlError) as ignore:
        yamlpos.load_all(text)
    assert expected in manifest.value.message
    assert ignore.value.line == manifest.value.line >= 1


def test_ignore_files_report_a_bound_at_its_line() -> None:
    entries, problems = parse_grype("ignore:\n  - vulnerability: CVE-2024-1\n" + LAUGHS.replace("a0:", "x0:"), "g.yaml")
    assert entries == [] and len(problems) == 1 and "aliases expand" in problems[0].message
    entries, problems = parse_trivyignore_yaml("vulnerabilities:\n" + "  - id: CVE-2024-1\n" + RECURSIVE, "t.yaml")
    assert entries == [] and problems[0].line == 3


def test_positions_and_plain_values() -> None:
    [doc] = yamlpos.load_all("a: 1\nb:\n  - x\n  - 2026-13-01\n")
    assert doc == {"a": 1, "b": ["x", "2026-13-01"]} and doc.lines == {"a": 1, "b": 2} and doc["b"].lines == [3, 4]
    assert yamlpos.locate("a: 1\nb:\n  - x\n", ("b", 0)) == yamlpos.Location(3, 5)


def test_dump_is_block_yaml_that_reads_back_as_written() -> None:
    doc = {"dag": {"repository": "r"}, "iam": {}, "secrets": ["api-key", "on", "no", "yes", "é"]}
    text = yamlpos.dump(doc)
    assert text.startswith("dag:\n  repository: r\niam: {}\nsecrets:\n  - api-key\n  - 'on'\n")
    assert yamlpos.load(text) == doc  # YAML 1.1 reads `on`/`no`/`yes` unquoted as booleans: they are quoted


def test_keys_are_text_and_remember_what_yaml_read_them_as() -> None:
    [doc] = yamlpos.load_all("7: a\n'8': b\nyes: c\nname: d\n")
    assert list(doc) == ["7", "8", "yes", "name"]
    assert doc.key_tags == {"7": "int", "8": "str", "yes": "bool", "name": "str"}


def test_the_scaffold_record_is_read_by_the_same_bounded_loader() -> None:
    from ap_build.errors import UsageError
    from ap_build.scaffold.state import load_state

    with pytest.raises(UsageError, match=r"^\.ap-build/scaffold\.yml:\d+: not valid YAML \(aliases expand"):
        load_state(LAUGHS)
    with pytest.raises(UsageError, match=r"scaffold\.yml:4: base: 7 is not a file path \(YAML reads it as a int"):
        load_state("runtime: python\ntemplate_version: 1\nbase:\n  7: x\nanswers: {}\n")
