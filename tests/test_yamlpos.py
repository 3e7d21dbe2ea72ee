"""The one YAML loader (ap_build/yamlpos.py): manifests (`load`) and ignore files (`load_all`) share its bounds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _pyyaml(text: str) -> object:
    """PyYAML's own construction of the document (the reference `load` must equal), or its error."""
    loader = yamlpos._Loader(text)
    try:
        return loader.get_single_data()
    except Exception as exc:
        return (type(exc), str(exc))
    finally:
        loader.dispose()


def _ours(text: str) -> object:
    try:
        return yamlpos.load(text)
    except Exception as exc:
        return (type(exc), str(exc))


CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "manifests"


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no corpus at {CORPUS}")
def test_load_equals_pyyaml_on_the_corpus() -> None:
    for path in sorted(CORPUS.glob("*.yml")):
        text = path.read_text()
        assert _ours(text) == _pyyaml(text), path.name


@pytest.mark.parametrize("text", [
    "a: 1\na: 2\n", "a: {b: 1, b: 2}\nc: 2026-13-01\n", "base: &b {x: 1}\nc:\n  <<: *b\n  y: 2\n",
    "c:\n  <<: {x: 1}\n  x: 2\n", "a: !!str [x]\n", "a: !!map [x]\n", "a: !!binary aGk=\n", "a: !!set {x, y}\n",
    "a: !!python/name:os.system\n", "? [a]\n: 1\n", "1: a\n0x1: b\n", "yes: 1\ntrue: 2\n", "a: 2026-01-01\n",
    "a: 2026-01-01T10:00:00+01:00\n", "a: 010\nb: 0o10\nc: 1:30\nd: 1e3\ne: .inf\nf: ~\ng: !!int x\n",
    "a: " + "[" * 900 + "]" * 900 + "\n", "".join("  " * i + f"k{i}:\n" for i in range(480)) + "  " * 480 + "x\n",
    "- a\n- {b: [c, {d: e}]}\n", "'': x\n~: y\n", "x\n", "", "=: a\n",
])
def test_load_equals_pyyaml_on_hand_cases(text: str) -> None:
    assert _ours(text) == _pyyaml(text)


_SCALAR = st.one_of(st.text(max_size=8), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False),
                    st.dates(), st.datetimes())
_DOCS = st.recursive(_SCALAR, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.one_of(st.text(max_size=6), st.integers(), st.booleans()), inner, max_size=4),
                     max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_DOCS, st.booleans(), st.sampled_from([None, "'", '"']))
def test_load_equals_pyyaml_on_generated_documents(doc: object, flow: bool, style: str | None) -> None:
    text = yaml.safe_dump(doc, default_flow_style=flow, default_style=style, allow_unicode=True)
    assert _ours(text) == _pyyaml(text)
