"""The Jinja allow-list against real Jinja and Airflow: what it accepts renders in Airflow's own template
environment without touching the platform (conn, var, ti...); what it refuses is refused."""

from __future__ import annotations

from typing import Any, ClassVar

import jinja2
import pendulum
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ap_build.workflow import templating
from ap_build.workflow.settings import Identity
from ap_build.workflow.validate import validate_text
from workflow.helpers import FULL

pytestmark = pytest.mark.xdist_group("airflow")

PARAMS = {"run_date": "2025-01-01", "max_bin": "255"}


class Tripwire:
    """Stands in for a context object a template must never reach; records every touch."""

    touched: ClassVar[list[str]] = []

    def __init__(self, name: str) -> None:
        self._name = name

    def _touch(self, how: str) -> Tripwire:
        Tripwire.touched.append(f"{self._name}{how}")
        return self

    def __getattr__(self, attr: str) -> Tripwire:
        return self._touch(f".{attr}")

    def __getitem__(self, key: object) -> Tripwire:
        return self._touch(f"[{key!r}]")

    def __call__(self, *args: object, **kwargs: object) -> Tripwire:
        return self._touch("()")

    def __str__(self) -> str:
        self._touch(" rendered")
        return "SECRET"


@pytest.fixture(scope="module")
def airflow_env() -> tuple[jinja2.Environment, dict[str, Any]]:
    """Airflow's own template environment (a DAG's) and a context with Airflow's names and value types."""
    from airflow.sdk import DAG
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.execution_time import macros

    env = DAG("templating-test", schedule=None).get_template_env()
    end = pendulum.datetime(2025, 3, 2, 6, 0, tz="UTC")
    start = end.subtract(days=1)
    context: dict[str, Any] = {
        "ds": "2025-03-01", "ds_nodash": "20250301", "ts": start.isoformat(), "ts_nodash": "20250301T060000",
        "ts_nodash_with_tz": "20250301T060000+0000", "run_id": "scheduled__2025-03-01",
        "task_instance_key_str": "dag__task__20250301", "logical_date": start, "data_interval_start": start,
        "data_interval_end": end, "prev_data_interval_start_success": start, "prev_data_interval_end_success": end,
        "prev_start_date_success": start, "prev_end_date_success": end, "params": ParamsDict(PARAMS),
        "macros": macros,
    }
    for name in ("conn", "var", "conf", "try_number", "ti", "task_instance", "task", "dag", "dag_run",
                 "inlet_events", "outlet_events", "triggering_asset_events", "outlets", "inlets", "templates_dict",
                 "exception"):
        context[name] = Tripwire(name)
    return env, context


ACCEPTED = [
    "{{ ds }}", "{{ data_interval_end }}", "s3://bucket/{{ ds_nodash }}/x", "{{ params.run_date }}",
    "{{ params.max_bin | int }}", "{{ params['run_date'] }}", "tag:data_first_{{ params.run_date }}",
    "{{ (data_interval_end - macros.timedelta(hours=20)).strftime('%Y-%m-%d') }}",
    "{{ macros.ds_add(ds, 7) }}", "{{ macros.ds_format(ds, '%Y-%m-%d', '%d/%m/%Y') }}",
    "{{ data_interval_start | ds_nodash }}", "{{ logical_date.year }}", "{{ ds.replace('-', '') }}",
    "{{ params.run_date if params.run_date is defined else ds }}", "{{ run_id ~ '-' ~ task_instance_key_str }}",
    "{{ data_interval_end.add(days=1).isoformat() }}", "{% raw %}{{ conn.x.password }}{% endraw %}",
    "{# a comment #}{{ ts }}", "{{ params.max_bin | int + 1 }}", "{{ ds | default('x') | upper }}",
]
REFUSED = [
    ("{{ conn.slack_api_default.password }}", "template name `conn` is not allowed"),
    ("{{ var.value.X }}", "template name `var` is not allowed"),
    ("{{ conf.get('database', 'sql_alchemy_conn') }}", "template name `conf` is not allowed"),
    ("{{ var.json.get('x') }}", "template name `var` is not allowed"),
    ("{{ ti.xcom_pull(dag_id='other') }}", "template name `ti` is not allowed"),
    ("{{ dag_run.conf }}", "template name `dag_run` is not allowed"),
    ("{{ task.dag }}", "template name `task` is not allowed"),
    ("{{ macros.json.dumps(1) }}", "template attribute `.json` is not allowed"),
    ("{{ macros.random() }}", "template attribute `.random` is not allowed"),
    ("{{ data_interval_end.__class__.__mro__ }}", "template attribute `.__class__` is not allowed"),
    ("{{ params.__dict__ }}", "params.__dict__ is not a declared param"),
    ("{{ params.other }}", "params.other is not a declared param"),
    ("{{ params.run_date.upper() }}", "template attribute `.upper` is not allowed"),
    ("{{ ds | attr('x') }}", "template filter `attr` is not allowed"),
    ("{{ ds * 100000000 }}", "template expression `Mul` is not allowed"),
    ("{{ '%9999999d' % 1 }}", "template expression `Mod` is not allowed"),
    ("{{ 9 ** 9 ** 9 }}", "template expression `Pow` is not allowed"),
    ("{{ lipsum(99999) }}", "template name `lipsum` is not allowed"),
    ("{{ range(10) | list }}", "template name `range` is not allowed"),
    ("{{ self }}", "template name `self` is not allowed"),
    ("{{ ds | ds_nodash }}", "template filter `ds_nodash` needs a date, not a str"),
    ("{{ macros.ds_add(*x) }}", "template `*args`/`**kwargs` are not allowed"),
    ("{% set x = 1 %}", "template statement `{% assign %}` is not allowed"),
    ("{% import 'x' as y %}", "template statement `{% import %}` is not allowed"),
    ("{% include '/etc/passwd' %}", "template statement `{% include %}` is not allowed"),
    ("{% for x in params %}{% endfor %}", "template statement `{% for %}` is not allowed"),
    ("{% do conn.get('x') %}", "template statement `{% exprstmt %}` is not allowed"),
    ("{{ ds[0] }}", "template subscript `[...]` is only allowed as params['<name>']"),
    ("{{ {'a': conn} }}", "template expression `Dict` is not allowed"),
    ("{{ ds ", "template syntax error"),
    ("{{ x }", "template syntax error"),
    ("{# unclosed", "template syntax error"),
    ("{{ " + "(" * 5000 + "ds" + ")" * 5000 + " }}", "template expression nests too deeply"),
    ("{{ " + " + ".join(["ds"] * 5000) + " }}", "template expression nests too deeply"),
    ("{{ ds" + " | upper" * 5000 + " }}", "template expression nests too deeply"),
    ("{{ " + "not " * 5000 + "ds }}", "template expression nests too deeply"),
]


def test_every_allowed_name_is_in_airflows_context() -> None:
    from airflow.sdk.definitions.context import Context
    from airflow.sdk.execution_time import macros

    assert set(templating.NAMES) <= set(Context.__annotations__)
    assert all(callable(getattr(macros, name)) for name in templating.MACROS_ALLOWED)
    assert set(templating.DATE_FILTERS) <= set(templating.FILTERS)


@pytest.mark.parametrize("template", ACCEPTED)
def test_accepted_templates_render_in_airflow_without_touching_the_platform(template: str, airflow_env) -> None:
    env, context = airflow_env
    assert templating.check(template, PARAMS) is None
    Tripwire.touched.clear()
    rendered = env.from_string(template).render(**context)
    assert Tripwire.touched == [] and "SECRET" not in rendered


def test_the_refused_names_are_a_real_route_to_secrets(airflow_env) -> None:
    """Without the allow-list, Airflow's environment hands these to the template (the tripwire fires)."""
    env, context = airflow_env
    Tripwire.touched.clear()
    assert env.from_string("{{ conn.slack_api_default.password }}").render(**context) == "SECRET"
    assert Tripwire.touched[:2] == ["conn.slack_api_default", "conn.password"]


@pytest.mark.parametrize(("template", "message"), REFUSED, ids=[t[:60] for t, _ in REFUSED])
def test_refused_templates_say_why(template: str, message: str) -> None:
    refusal = templating.check(template, PARAMS)
    assert refusal is not None and refusal.message.startswith(message), refusal
    assert refusal.hint


def test_literal_text_is_not_a_template() -> None:
    for text in ("plain", "a { b } c", "50%", "#channel", "${HOME}", "}}", "{ {"):
        assert templating.check(text) is None


def test_refusals_in_a_manifest_point_at_file_line_column() -> None:
    ident = Identity("development", "my-project", "my-flow")
    text = FULL.replace("    SHARED: dag-level", '    SHARED: "x {{ var.value.token }}"')
    [problem] = validate_text(text, "wf.yml", ident).problems
    assert str(problem).startswith("wf.yml:19:19: dag.env_vars.SHARED: template name `var` is not allowed "
                                   "(hint: allowed: ds, ds_nodash,")
    block = FULL.replace("    SHARED: dag-level", "    SHARED: |\n      line one\n      {{ conn.x }}")
    [problem] = validate_text(block, "wf.yml", ident).problems
    assert (problem.line, problem.column, problem.path) == (21, 10, "dag.env_vars.SHARED")
    # Airflow also renders env var names and the image (tag): both are checked
    key = FULL.replace("    SHARED: dag-level", '    "{{ var.value.k }}": x')
    assert [p.path for p in validate_text(key, "wf.yml", ident).problems] == ["dag.env_vars.{{ var.value.k }}"]
    tag = FULL.replace('tag: "1.0"', 'tag: "{{ conn.x.login }}"')
    assert [(p.line, p.path) for p in validate_text(tag, "wf.yml", ident).problems] == [(3, "dag.tag")]
    task = FULL.replace("        OVERRIDDEN: extract", "        OVERRIDDEN: '{{ params.nope }}'")
    [problem] = validate_text(task, "wf.yml", ident).problems
    assert problem.path == "dag.tasks.extract.env_vars.OVERRIDDEN" and "dry_run, run_date" in problem.hint


NAMES = st.sampled_from([*templating.NAMES, "conn", "var", "conf", "ti", "dag_run", "task", "lipsum", "range", "self",
                         "namespace", "cycler", "joiner", "loop", "dict"])
ATTRS = st.sampled_from(["password", "value", "json", "get", "items", "strftime", "isoformat", "year", "timedelta",
                         "ds_add", "replace", "upper", "__class__", "__globals__", "run_date", "max_bin", "conf",
                         "xcom_pull", "add", "random", "format", "_ParamsDict__dict", "dump"])
FILTERS = st.sampled_from([*templating.FILTERS, "attr", "map", "safe", "format", "selectattr", "tojson", "pprint"])
ARGS = st.sampled_from(["", "1", "'x'", "ds", "conn", "days=1", "hours=2", "'%Y'"])


def _expr(base: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda e, a: f"{e}.{a}", base, ATTRS),
        st.builds(lambda e, a: f"{e}[{a!r}]", base, ATTRS),
        st.builds(lambda e, f: f"{e} | {f}", base, FILTERS),
        st.builds(lambda e, a: f"{e}({a})", base, ARGS),
        st.builds(lambda e, f: f"({e} - {f})", base, base),
        st.builds(lambda e, f: f"{e} ~ {f}", base, base),
    )


EXPRESSIONS = st.recursive(NAMES, _expr, max_leaves=6)


@settings(max_examples=400, deadline=None)
@given(EXPRESSIONS)
def test_nothing_the_allow_list_accepts_reaches_the_platform(airflow_env, expression: str) -> None:
    env, context = airflow_env
    template = "{{ " + expression + " }}"
    if templating.check(template, PARAMS) is not None:
        return
    Tripwire.touched.clear()
    try:
        rendered = env.from_string(template).render(**context)
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError, KeyError, OverflowError):
        return  # a template that fails at run time fails the task: it reveals nothing
    assert Tripwire.touched == [] and "SECRET" not in rendered, template
