"""The fast loader (yaml-rs behind a screen) gives PyYAML's value or nothing, never another value.

Every check compares fastload.load with the exact path (loader.load, PyYAML's safe loader with libyaml,
as the platform reads manifests) on the same text: where the fast path answers, the values must be
equal, types included (repr: 1 is not 1.0 nor True, a date is not a string); where PyYAML refuses the
text, the fast path must not answer.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml_rs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ap_build.workflow import fastload, loader
from ap_build.workflow.settings import identify
from ap_build.workflow.validate import validate_text

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "manifests"
BASE = """\
dag:
  repository: ministryofjustice/example
  tag: "1.0"
  retries: 2
  retry_delay: 150
  start_date: "2025-03-01"
  schedule: "0 6 * * 1-5"
  env_vars:
    MODE: daily
    RATIO: 0.5
    DEBUG: false
  tasks:
    load:
      dependencies: [extract]
    extract: {}
maintainers:
  - octocat
tags:
  business_unit: HQ
  owner: someone@justice.gov.uk
iam:
  s3_read_only:
    - mojap-land/example/*
"""
# YAML 1.1 (PyYAML) and YAML 1.2 (yaml-rs) read these differently, or PyYAML refuses them, or they are plain
# look-alikes that read the same
SCALARS = [
    "010", "-010", "00", "0o10", "0x1F", "0b11", "1_000", "1:30", "190:20:30.15", "-1:30", "1e3", "1E3", "1.0e3",
    "1.0e+3", "-1.5e-3", "1e-5", ".5", "-.5", "1.", "+5", "-0", "0", "7", "-12", "3.25", "12345678901234567890",
    ".inf", ".Inf", ".iNf", "-.inf", "+.INF", ".nan", ".NaN", ".naN", "inf", "nan", "NaN", "Infinity",
    "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "y", "n", "Y",
    "true", "True", "TRUE", "tRUE", "false", "null", "Null", "NULL", "nULL", "~", "=", "<<", "",
    "2024-01-01", "2024-1-1", "2024-13-01", "2024-02-30", "0000-01-01", "2024-01-01T10:00:00",
    "2024-01-01 10:00:00", "2024-01-01t10:00:00Z", "2024-01-01 10:00", "2024-01-01T10:00:00+01:00",
    "_0", "_1_", "-_1", "_.5", "._5", "0o_7", "0X1", "0B1", "+.5", "_1e3", "1_e5", "+_.5", "_.inf", "_-1",
    "1.5.3", "1.4.2-test", "v1", "0:0", "1-5", "arn:aws:iam::123456789012:role/x", "s3://b/2024/01", "a:1",
]
CONTEXTS = [
    "x: {s}\n", "x: {s} # c\n", "x:\n  - {s}\n", "x: [{s}]\n", "x: [a, {s}, b]\n", "x: {{k: {s}}}\n", '{{"k":{s}}}\n',
    "{s}: x\n", "x:\n  {s}: y\n", "x: a\n  {s}\n", "x: \"{s}\"\n", "x: '{s}'\n", "x: |-\n  {s}\n", "x: >\n  {s}\n",
    "x: {s}", "- {s}\n", "{s}\n", "---\nx: {s}\n", "x: {s}\n---\ny: 1\n", "x: &a {s}\ny: *a\n", "x: !!str {s}\n",
    "x: [{s},\n  b]\n", "x: {{k: {s}\n  }}\n", "x: [a,\n  {s}\n  ]\n", "x: |\n  {s}\n  b\n", "x: >-\n  a\n  {s}\n",
    "x: |{s}\n  a\n", "x: {s}|\n  a\n", "x: [{s} |]\n", "x:\n  - {s}\n  -\n    {s}\n",
    'x: [a, "{s}"]\n', 'x: {{k: "{s} | int"}}\n', 'x: "{{{{ {s} | int }}}}"\n', "x: ['{s}', \"{s}\"]\n",
    'x: [a"{s}", b]\n', "x: [it's, {s}]\n", 'x: ["a\n  {s}", b]\n', "x: {{'k':'{s}'}}\n", 'x: ["{s}"{s}]\n',
]
DOCUMENTS = [  # structure: aliases, merges, tags, complex keys, documents, characters, block scalars, flow
    'a: &x 1\nb: *x\n', 'a: *x\n', 'a: &x {k: 1}\nb:\n  <<: *x\n', '<<: {a: 1}\n', "a: !!int '3'\n",
    'a: !!binary aGk=\n', 'a: !custom x\n', '? [a]\n: b\n', '? a\n: b\n', '[a]: b\n', '{a: 1}: b\n',
    'a: 1\n---\nb: 2\n', '%YAML 1.1\n---\na: 1\n', '--- a\n', '---\na: 1\n...\n', 'a: 1\n...\n', 'a:\tb\n',
    'a:\n\tb: 1\n', 'a: 1\r\nb: 2\r\n', '\ufeffa: 1\n', 'a: x\x85y\n', 'a: x\u2028y\n', 'a: x\x07\n', 'a: \x7f\n',
    'a: "\\x41\\u00e9\\N\\_\\/\\t"\n', 'a: x\\y\n', 'a: |\n  x\n\n', 'a: |+\n  x\n\n', 'a: |-\n  x\n',
    'a: >\n  x\n   y\n  z\n', 'a: >\n  x\n   y\n  z', 'a: |2\n   x\n', 'a: |\n\n  x\n', 'a: >-\n  x\n\n  y\n# c\n',
    'a: [a:]\n', 'a: [:a]\n', 'a: {a:1}\n', 'a: {"a":1}\n', 'a: [a: 1]\n', 'a: {a, b}\n', 'a: [a, b, ]\n',
    'a: [a\n  b]\n', 'a: 1\na: 2\n', "a: 1\n'a': 2\n", 'true: 1\nTrue: 2\n', 'null: 1\n~: 2\n', "1: a\n'1': b\n",
    "a: 'it''s'\n", 'a: "x\n\n  y"\n', 'a:  \n  x\n', 'a: x #c\nb: y#c\n', 'a: @x\n', 'a: `x\n', 'a: %x\n', '- @x\n',
    '@x: 1\n', 'a: [|]\n', 'a: [>]\n', 'a: [@x]\n', 'a: {b: %}\n', 'a: |x\n', 'a: >x\n', '- |\n x\n', 'a: [- x]\n',
    'a: [? x]\n', 'a: [x #c\n ]\n', 'a: [\n]\n', 'a: - b\n', 'a: b: c\n', 'a: -x\n', 'a: --\n', '', '# only\n',
    '- a\n', 'a\n', 'a: x\n b\n', 'a:\n  b:\n  c: 1\n', "a: 'x\n", 'a: ]\n', 'a: {b: [1, {c: d}]}\n',
    'a:\n- b\n- c\n', 'x: |\n', 'x: >\n\n', 'x: |+\n \n', 'x: >-\n\n  y\n', 'x: |\ny: 1\n', 'x: |2\n   a\n  b\n',
    'a: {k: |\n}\n', 'a: [|\n]\n', 'a: {k: >\n  x}\n', 'a: [x, |\n  ]\n', 'a: {k: |-\n  x\n}\n', 'a: [\n  |\n  ]\n',
    'a: [a,\n |\n ]\n', 'a: [a, [b], c\n  , |\n ]\n', 'a: {k: |}\n', 'a: ] [\n', 'a: [a, ]b[\n', 'a: "[" \n',
    "a: " + "[" * 300 + "]" * 300 + "\n", "".join(" " * i + f"k{i}:\n" for i in range(300)) + " " * 300 + "v\n",
]


def exact(text: str) -> str:
    try:
        return repr(loader.load(text))
    except Exception as exc:  # any refusal: the fast path must not answer either
        return f"refused: {type(exc).__name__}"


def same_or_none(text: str) -> dict | None:
    fast = fastload.load(text)
    if fast is not None:
        assert repr(fast) == exact(text), f"fast path differs from PyYAML on {text!r}"
    return fast


@pytest.mark.parametrize("context", CONTEXTS)
def test_scalars_in_every_context(context: str) -> None:
    for scalar in SCALARS:
        same_or_none(BASE + context.format(s=scalar))


@pytest.mark.parametrize("scalar", ["010", "0o10", "1:30", "1e3", "yes", "on", "OFF", "2024-01-01", "2024-13-01",
                                    ".naN", "=", "<<", "|\n", ">\n\n  x", "|+\n  \n"])
def test_yaml_11_vs_12_differences_take_the_exact_path(scalar: str) -> None:
    assert fastload.load(f"{BASE}x: {scalar}\n") is None
    assert fastload.load(f"{BASE}x: \"{scalar}\"\n") is not None  # quoted, the same string in both


@pytest.mark.parametrize("document", DOCUMENTS)
def test_structure(document: str) -> None:
    same_or_none(document)
    same_or_none(BASE + document)


def test_word_spellings_resolve_alike_except_yaml_11_booleans() -> None:
    """The screen leaves true/false/null to yaml-rs in any spelling: they must resolve as PyYAML does."""
    for word in ("true", "false", "null", "yes", "no", "on", "off", "inf", "nan"):
        for caps in itertools.product((str.lower, str.upper), repeat=len(word)):
            spelled = "".join(f(c) for f, c in zip(caps, word, strict=True))
            for text in (spelled, f".{spelled}", f"-.{spelled}", f"{spelled}:"):
                same_or_none(f"{BASE}x: {text}\n")
                same_or_none(f"{BASE}{text}: x\n")


def test_a_plain_manifest_takes_the_fast_path() -> None:
    data = fastload.load(BASE)
    assert data is not None and repr(data) == exact(BASE)
    assert data["dag"]["env_vars"] == {"MODE": "daily", "RATIO": 0.5, "DEBUG": False}


def test_bounds_hold() -> None:
    big = BASE + "x: " + "a" * loader.MAX_BYTES + "\n"
    assert fastload.load(big) is None  # the exact path refuses it with its own message
    huge = "1" + "0" * 4400  # PyYAML refuses an int of over 4,300 digits; yaml-rs would build it
    assert fastload.load(f"{BASE}x: {huge}\n") is None
    problems = [str(p) for p in validate_text(BASE.replace("MODE: daily", f"MODE: {huge}"), "w.yml", None).problems]
    assert problems and "is not a whole number" in problems[0], problems
    for long in (huge + ".5", "0." + "1" * 400, "-" + "9" * 40):
        same_or_none(f"{BASE}x: {long}\n")
    with pytest.raises(yaml_rs.YAMLDecodeError):  # an alias needs an anchor, which the screen sends away
        yaml_rs.loads(BASE + "x: *a\n", parse_datetime=False)


SCALAR = st.one_of(st.sampled_from(SCALARS),
                   st.text("01289.:-+eExXobOB_ yYnNoOtTfF~<=#'\"[]{},&*!?|>%@\\\t\n", max_size=8))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(CONTEXTS), SCALAR), min_size=1, max_size=4))
def test_generated_documents(parts: list[tuple[str, str]]) -> None:
    same_or_none("".join(context.format(s=scalar) for context, scalar in parts))
    same_or_none(BASE + "".join(context.format(s=scalar).replace("x", f"x{i}", 1)
                                for i, (context, scalar) in enumerate(parts)))


def test_problems_come_from_the_exact_path() -> None:
    """A manifest with problems loads fast, then is validated again from PyYAML's data: the same problems."""
    text = BASE.replace("  retries: 2\n", "  retries: 2\n  retires: 3\n  max_active_runs: 0\n")
    assert fastload.load(text) is not None
    problems = [str(p) for p in validate_text(text, "w.yml", None).problems]
    assert problems == [str(p) for p in validate_text(text, "w.yml", None, fast=False).problems]
    assert problems[0] == "w.yml:6:20: dag.max_active_runs: Input should be greater than or equal to 1", problems
    assert problems[1].startswith("w.yml:5:3: dag.retires: unknown key 'retires'"), problems


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no corpus at {CORPUS}")
def test_corpus_fast_path_equals_pyyaml() -> None:
    files = sorted(CORPUS.glob("*.yml"))
    fast = 0
    for path in files:
        text = path.read_text()
        fast += same_or_none(text) is not None
        result = validate_text(text, path.name, identify(path))
        assert result.ok, [str(p) for p in result.problems]
        assert result.manifest == validate_text(text, path.name, identify(path), fast=False).manifest
    assert fast >= 0.95 * len(files), f"only {fast} of {len(files)} manifests took the fast path"


@settings(max_examples=400, deadline=None)
@given(st.text("ab01:- \n[]{},#'\"&*!?|>%@`\\.~<=yYnNoeExXO_+\t\r", max_size=40))
def test_generated_text(text: str) -> None:
    same_or_none(text + "\n")
    same_or_none(BASE + "x:\n  " + text + "\n")


def test_templates_hidden_behind_escapes_are_still_checked() -> None:
    """Validation skips the template checks for a text without `{{`/`{%`/`{#`, unless escapes could make one."""
    for value in ('"\\x7b\\x7b conn.secret.password }}"', '"\\u007b{ var.value.x }}"', '"{\\\n  { conn.x }}"'):
        text = BASE.replace("    MODE: daily\n", f"    MODE: {value}\n")
        problems = [str(p) for p in validate_text(text, "w.yml", None).problems]
        assert any("template name `conn`" in p or "template name `var`" in p for p in problems), (value, problems)


def test_checks_per_text_are_bounded() -> None:
    """Each unusual token costs a load by both parsers: past MAX_CHECKS the exact path is simply used."""
    odd = "".join(f"    V{i}: {i}.{i}.{i}-x\n" for i in range(fastload.MAX_CHECKS + 1))
    text = BASE.replace("  env_vars:\n", "  env_vars:\n" + odd)
    assert fastload.load(text) is None
    assert fastload.load(BASE.replace("  env_vars:\n", "  env_vars:\n" + odd[:odd.index("    V1:")])) is not None
