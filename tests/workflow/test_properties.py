"""Property tests: hostile free text reaches Airflow as the platform reads it (its YAML double-quote
escapes, nothing else); invalid input never crashes."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ap_build.workflow.codegen import as_text, render_dag
from ap_build.workflow.settings import Identity, load_settings
from ap_build.workflow.validate import validate_text
from workflow.helpers import env_of

pytestmark = pytest.mark.xdist_group("airflow")

IDENT = Identity("test", "prop-project", "prop-flow")
# templates: allowed ones, and a refused one made literal by {% raw %} (the allow-list is tested elsewhere)
HOSTILE = st.sampled_from(["'''", '"""', "{{ run_id }}", "{{ data_interval_end | ds_nodash }}",
                           "{% raw %}{{ conn.x.password }}{% endraw %}", "\\", "\\n", "\x00", "\n", "\r\n", "\t",
                           "'); import os; os.system('id') #", '"; raise SystemExit #', "${HOME}", "$HOME", "é✓🚀",
                           "\u2028", "True", "None", "0x10", ""])
# no `{` in free text: a template opener only ever comes from HOSTILE's whole templates
FREE = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="{"), max_size=12)
TEXT = st.lists(st.one_of(HOSTILE, FREE),
                min_size=1, max_size=4).map("".join)
KEY = st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True)


def manifest(env: dict[str, str], params: dict[str, str], tag: str, channel: str) -> dict[str, Any]:
    return {
        "dag": {"repository": "ministryofjustice/prop", "tag": tag, "env_vars": env, "params": params,
                "tasks": {"first": {"env_vars": {"TASK_ONLY": channel}}, "second": {"dependencies": ["first"]}}},
        "maintainers": ["octocat"],
        "tags": {"business_unit": "HQ", "owner": "someone@justice.gov.uk"},
        "notifications": {"slack_channel": channel},
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(env=st.dictionaries(KEY, TEXT, max_size=4),
       params=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), TEXT, max_size=3),
       tag=TEXT, channel=TEXT)
def test_hostile_values_round_trip_through_airflow(dagbag, env, params, tag, channel) -> None:
    # escape non-ASCII: PyYAML writes a raw NEL (U+0085) that its own loader then reads as a line break
    text = yaml.safe_dump(manifest(env, params, tag, channel), allow_unicode=False)
    result = validate_text(text, "prop.yml", IDENT)
    assert result.ok, [str(p) for p in result.problems]
    source = render_dag(result.manifest, IDENT, dataclasses.replace(load_settings(), airflow=3))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "dag.py").write_text(source, encoding="utf-8")
        bag = dagbag(Path(tmp))
        assert bag.import_errors == {}
        dag = bag.dags["prop-project.prop-flow"]
    first = env_of(dag.get_task("first"))
    for key, value in env.items():
        if not key.startswith("PARAM_"):
            assert first[key] == as_text(value)  # backslash escapes read as the platform reads them
    assert first["TASK_ONLY"] == as_text(channel)
    assert dag.get_task("first").image.endswith(f"/ministryofjustice/prop:{tag}")
    assert {k: (v.value if hasattr(v, "value") else v) for k, v in dag.params.items()} == \
        {k: as_text(v) for k, v in params.items()}
    assert dag.get_task("second").upstream_task_ids == {"first"}
    assert len(dag.tasks) == 2  # nothing injected


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                     max_size=3), max_leaves=8)
FIELDS = ["repository", "tag", "compute_profile", "schedule", "start_date", "end_date", "retries", "tasks",
          "env_vars", "params", "catchup", "max_active_runs", "made_up_key"]


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(FIELDS), value=JSONISH, top=st.sampled_from(["dag", "tags", "iam", "notifications"]))
def test_invalid_manifests_give_problems_never_a_crash(field, value, top) -> None:
    data = manifest({"A": "b"}, {}, "v1", "#c")
    data.setdefault(top, {})[field] = value
    text = yaml.safe_dump(data, allow_unicode=True)
    result = validate_text(text, "bad.yml", IDENT)  # must not raise
    for p in result.problems:
        assert p.line >= 1 and p.column >= 1 and p.message
    if field == "made_up_key" or top == "tags":
        assert result.problems  # unknown keys are always refused


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text) -> None:
    result = validate_text(text, "x.yml", IDENT)
    assert result.problems or result.ok
