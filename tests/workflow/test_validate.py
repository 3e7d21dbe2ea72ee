"""The validator: every problem of a file at once, at file:line:column, with the key path and a hint."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from ap_build.errors import UsageError
from ap_build.workflow.model import json_schema
from ap_build.workflow.settings import Identity, identify
from ap_build.workflow.validate import validate_text
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
