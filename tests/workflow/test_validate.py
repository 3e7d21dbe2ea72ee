"""The validator: every problem of a file at once, at file:line:column, with the key path and a hint."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ap_build import yamlpos
from ap_build.errors import UsageError
from ap_build.workflow.model import json_schema
from ap_build.workflow.settings import Identity, identify
from ap_build.workflow.validate import MAX_BYTES, dag_id_problem, validate_file, validate_text
from workflow.helpers import FULL, SINGLE, cli

IDENT = Identity("development", "my-project", "my-flow")


def problems(text: str, ident: Identity | None = IDENT) -> list[str]:
    return [str(p) for p in validate_text(text, "wf.yml", ident).problems]


def test_fixtures_are_valid() -> None:
    assert problems(FULL) == [] and problems(SINGLE) == []


def test_unknown_key_points_at_the_key_and_suggests() -> None:
    text = FULL.replace("  compute_profile: general-on-demand", "  compute_profle: general-on-demand")
    assert problems(text) == ["wf.yml:4:3: dag.compute_profle: unknown key 'compute_profle' "
                              "(hint: did you mean `compute_profile`?)"]


def test_enum_values_list_the_choices_and_suggest() -> None:
    [msg] = problems(FULL.replace("business_unit: HMPPS", "business_unit: HMPP"))
    assert msg.startswith("wf.yml:38:18: tags.business_unit: 'HMPP' is not allowed: must be one of")
    assert "'Technology Services'" in msg and "did you mean `HMPPS`?" in msg


def test_a_float_tag_says_to_quote_it() -> None:
    [msg] = problems(FULL.replace('tag: "1.0"', "tag: 1.0"))
    assert msg.startswith("wf.yml:3:8: dag.tag: expected a string, got the number 1.0")
    assert 'tag: "1.0"' in msg


def test_all_problems_of_a_file_at_once() -> None:
    text = (FULL.replace("business_unit: HMPPS", "business_unit: Nope")
            .replace("owner: data.owner@justice.gov.uk", "owner: someone@example.com")
            .replace("max_active_runs: 3", "max_active_runs: many"))
    found = problems(text)
    assert len(found) == 3
    assert {f.split(": ")[1] for f in found} == {"tags.business_unit", "tags.owner", "dag.max_active_runs"}


def test_duplicate_keys_name_both_lines() -> None:
    [msg] = problems(FULL.replace("  catchup: true\n", "  catchup: true\n  catchup: false\n"))
    assert msg.startswith("wf.yml:7:3: catchup: duplicate key 'catchup' (first at line 6)")


def test_invalid_yaml_has_a_position() -> None:
    [msg] = problems("dag:\n  repository: [unclosed\n")
    assert msg.startswith("wf.yml:3:1: invalid YAML")


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('schedule: "0 7 3-10 * ? *"', 'schedule: "every day"', "dag.schedule: 'every day' is not a cron expression"),
    ('schedule: "0 7 3-10 * ? *"', 'schedule: "@sometimes"', "is not an Airflow preset"),
    ('end_date: "2026-01-31"', 'end_date: "2024-01-31"', "end_date 2024-01-31 is before start_date 2025-03-01"),
    ('end_date: "2026-01-31"', 'end_date: "2025-02-30"', "'2025-02-30' is not a date in the form YYYY-MM-DD"),
    ("dependencies: [extract]\n", "dependencies: [extrac]\n",
     "depends on unknown task 'extrac' (hint: did you mean `extract`?)"),
    ("      compute_profile: gpu-spot-8vcpu-32gb\n",
     "      compute_profile: gpu-spot-8vcpu-32gb\n      dependencies: [load]\n",
     "dependency cycle: extract -> load -> extract"),
    ("  textract: true\n  kms", "  textract: true\n  kms", None),
    ("secrets: [api-key, db-password]", "secrets: [api-key, shared]", None),
])
def test_semantic_checks(old: str, new: str, expected: str | None) -> None:
    assert old in FULL
    found = problems(FULL.replace(old, new))
    if expected is None:
        assert found == []
    else:
        assert any(expected in f for f in found), found


def test_secret_env_var_collision_and_textract_rule() -> None:
    text = FULL.replace("    SHARED: dag-level", "    SECRET_API_KEY: oops")
    assert any("env var SECRET_API_KEY collides with secret 'api-key'" in p for p in problems(text))
    text = FULL.replace("  s3_read_only: [bucket/raw/*, other-bucket/in/*]\n", "")
    assert any("textract needs a non-empty iam.s3_read_only" in p for p in problems(text))


def test_nulls_are_refused_but_empty_maps_are_fine() -> None:
    no_secrets = FULL.replace("secrets: [api-key, db-password]", "secrets:")
    assert any(p.startswith("wf.yml:53:9: secrets: an empty value (null) is not allowed") for p in problems(no_secrets))
    body = "    transform_1:\n      hmcts_sdp_networking: true\n      dependencies: [extract]\n"
    assert body in FULL
    no_body = problems(FULL.replace(body, "    transform_1:\n"))
    assert any("dag.tasks.transform_1: an empty value (null) is not allowed" in p for p in no_body), no_body
    assert problems(FULL.replace(body, "    transform_1: {}\n")) == []


def test_platform_ci_rules() -> None:
    assert any("contains `_`" in p for p in problems(FULL, Identity("development", "my_project", "flow")))
    long = Identity("development", "a-very-long-project-name-indeed", "and-a-long-workflow-name")
    assert any("(max 64)" in p for p in problems(FULL, long))
    assert problems(SINGLE, long) == []  # external_role: no generated role


def test_schema_accepts_the_fixtures(tmp_path: Path) -> None:
    schema = json_schema()
    for text in (FULL, SINGLE):
        data = json.loads(json.dumps(yaml.safe_load(text), default=str))
        jsonschema.validate(data, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"dag": {"repository": "x/y", "tag": "1"}, "maintainers": ["a"],
                             "tags": {"business_unit": "Nope", "owner": "a@justice.gov.uk"}}, schema)


def test_identify() -> None:
    assert identify(Path("x/environments/test/proj/flow/workflow.yml")) == Identity("test", "proj", "flow")
    assert identify(Path("production__proj__flow.yml")) == Identity("production", "proj", "flow")
    assert identify(Path("any.yml"), "development", "p", "w") == Identity("development", "p", "w")
    with pytest.raises(UsageError, match="cannot tell"):
        identify(Path("any.yml"))
    with pytest.raises(UsageError, match="not one of"):
        identify(Path("staging__p__w.yml"))


def test_cli_exit_codes_and_json(manifest_tree, tmp_path: Path) -> None:
    good = manifest_tree(FULL)
    bad = manifest_tree(FULL.replace("business_unit: HMPPS", "business_unit: HMPP"), workflow="bad-flow")
    ok = cli("workflow", "validate", str(good))
    assert ok.returncode == 0, ok.stderr
    proc = cli("workflow", "validate", str(good.parents[3]), "--format", "json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert (report["count"], report["invalid"], report["valid"]) == (2, 1, False)
    [entry] = [f for f in report["files"] if not f["valid"]]
    assert entry["file"] == str(bad) and entry["problems"][0]["line"] == 38
    text = cli("workflow", "validate", str(bad))
    assert text.returncode == 1 and text.stdout.startswith(f"{bad}:38:18: tags.business_unit:")
    missing = cli("workflow", "validate", str(tmp_path / "nope.yml"))
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr
    schema = cli("workflow", "schema")
    assert schema.returncode == 0 and json.loads(schema.stdout)["title"].startswith("Analytical Platform")


@settings(max_examples=300, deadline=None)
@given(project=st.text(st.sampled_from("ab-_.9é Z/\n\t$[]{}"), min_size=1, max_size=8),
       workflow=st.text(st.sampled_from("ab-_.9é Z/\n\t$[]{}"), min_size=1, max_size=8))
def test_dag_id_rule_is_airflows_own(dagbag, project: str, workflow: str) -> None:
    """Every dag_id the validator accepts, Airflow's validate_key accepts; everything Airflow refuses is refused
    (the validator is stricter only on a trailing newline, which Airflow's `$` lets through)."""
    from airflow.utils.helpers import validate_key

    try:
        validate_key(f"{project}.{workflow}")
        airflow_ok = True
    except Exception:
        airflow_ok = False
    ours_ok = dag_id_problem(Identity("test", project, workflow)) is None
    assert ours_ok <= airflow_ok
    if airflow_ok and not ours_ok:
        assert workflow.endswith("\n") or "\n" in project
    assert dag_id_problem(Identity("test", "a" * 125, "b" * 124)) is None
    assert "Airflow allows 250" in dag_id_problem(Identity("test", "a" * 125, "b" * 125))


def test_folder_names_that_are_not_dag_ids_are_problems() -> None:
    assert any("project folder 'my project' cannot be part of an Airflow dag_id" in p
               for p in problems(FULL, Identity("development", "my project", "flow")))
    assert any("dag_id 'a..b' contains `..`" in p for p in problems(FULL, Identity("development", "a.", "b")))
    for bad in ("..", ".", "a/b", "a\\b", "a\x00b"):
        with pytest.raises(UsageError, match="is not a single folder name"):
            identify(Path("any.yml"), "development", bad, "w")
    with pytest.raises(UsageError, match="is not a single folder name"):
        identify(Path("development__..__w.yml"))


@pytest.mark.parametrize(("text", "expected"), [
    ("a: &a [*a]\n", "1:4: an alias refers to the value that contains it"),
    ("? [a]\n: 1\n", "1:3: a list cannot be a key"),
    ("x:\n  ? {a: 1}\n  : 2\n", "2:5: a mapping cannot be a key"),
    ("start: 2025-02-30\n", "1:8: '2025-02-30' is not a date or time (day is out of range for month)"),
    ("n: !!float abc\n", "1:4: 'abc' is not a number"),
    ("b: !!bool maybe\n", "1:4: 'maybe' is not true or false"),
    ("x: " + "[" * 2000 + "]" * 2000 + "\n", "invalid YAML: exceeded maximum nesting depth"),
])
def test_yaml_that_parses_but_is_no_manifest(text: str, expected: str) -> None:
    [msg] = problems(text)
    assert msg.startswith("wf.yml:") and expected in msg, msg


def test_alias_expansion_is_bounded_but_ordinary_aliases_work() -> None:
    anchors = FULL.replace("  tasks:\n", "  tasks:\n") + "x-common: &common {a: 1}\n"
    assert "unknown key 'x-common'" in problems(anchors)[0]  # parsed, then refused as a key: no expansion issue
    shared = FULL.replace("  inlets: [\"s3://bucket/raw/\"]", "  inlets: &raw [\"s3://bucket/raw/\"]")
    laughs = "\n".join(["a0: &a0 [" + ", ".join(["x" * 100] * 50) + "]"]
                       + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 50)}]" for i in range(1, 4)])
    [msg] = problems(laughs + "\n" + FULL)
    assert msg.startswith(f"wf.yml:3:5: aliases expand this value beyond {yamlpos.MAX_NODES:,} values or "
                          f"{yamlpos.MAX_CHARS:,} characters")
    assert problems(shared) == []
    long_text = "a0: &a0 " + "x" * 100_000 + "\na1: [" + ", ".join(["*a0"] * 50) + "]\n"  # 51 values, 5 M characters
    [msg] = problems(long_text + FULL)
    assert msg.startswith("wf.yml:2:5: aliases expand this value beyond")


def test_file_size_and_encoding_are_bounded(tmp_path: Path) -> None:
    big = tmp_path / "big.yml"
    big.write_text(FULL + "#" * MAX_BYTES)
    [problem] = validate_file(big, IDENT).problems
    assert problem.message == "the manifest is more than 262,144 bytes"
    latin = tmp_path / "latin.yml"
    latin.write_bytes(FULL.encode().replace(b"HMPPS", b"HMPP\xc9"))
    [problem] = validate_file(latin, IDENT).problems
    assert (problem.line, problem.column, problem.message) == (38, 22, "not UTF-8 text (byte 0xc9)")


def test_many_problems_are_bounded_in_time_and_output() -> None:
    """20,000 unknown keys: the first 100 located (one parse of the text for all), then a count."""
    keys = "".join(f"  k{i}: 1\n" for i in range(20_000))
    text = FULL.replace("  catchup: true\n", keys + "  catchup: true\n")
    assert len(text) < MAX_BYTES
    found = validate_text(text, "wf.yml", IDENT).problems
    assert len(found) == 101 and str(found[0]).startswith("wf.yml:6:3: dag.k0: unknown key 'k0'")
    assert str(found[-1]) == ("wf.yml:1:1: 19900 more problem(s) not shown "
                              "(hint: fix the first 100 and validate again)")
