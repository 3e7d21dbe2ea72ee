"""The Jinja allow-list for manifest values Airflow renders as templates (pure).

Airflow renders a KubernetesPodOperator's `env_vars` (names and values) and `image` with Jinja, with
the whole task context in scope: `{{ conn.x.password }}` or `{{ var.value.x }}` would hand the
platform's secrets to the user's pod. Templating stays, but a template may only use the names, filters,
attributes and calls below; it is parsed with Jinja's own parser (the environment Airflow renders
with: `jinja2.ext.do` enabled) and its syntax tree walked, so anything not on the list is refused.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass

import jinja2
from jinja2 import nodes

# what an expression is, so attributes and calls can be allowed per kind
STR, DATE, NUMBER, DELTA, PARAMS, MACROS, ANY = "str", "date", "number", "delta", "params", "macros", "any"

NAMES: dict[str, str] = {
    # the run's dates and ids: read-only values, no route to the metadata database or the platform
    "ds": STR, "ds_nodash": STR, "ts": STR, "ts_nodash": STR, "ts_nodash_with_tz": STR, "run_id": STR,
    "task_instance_key_str": STR,  # (not try_number: Airflow 2.10, the platform's line, has no such name)
    "logical_date": DATE, "data_interval_start": DATE, "data_interval_end": DATE,
    "prev_data_interval_start_success": DATE, "prev_data_interval_end_success": DATE,
    "prev_start_date_success": DATE, "prev_end_date_success": DATE,
    "params": PARAMS,  # params.<name> / params['<name>'] of a declared param only
    "macros": MACROS,  # only the date helpers in MACROS below
}
# never: conn, var, conf (secrets, Airflow's configuration), ti/task_instance/task/dag/dag_run (reach the
# scheduler's objects, XComs of other runs; `dag_run.conf` bypasses the declared params), macros.json/yaml/
# random/uuid/time/dateutil
MACROS_ALLOWED: dict[str, str] = {"timedelta": DELTA, "ds_add": STR, "ds_format": STR}
DATE_METHODS: dict[str, str] = {
    "strftime": STR, "isoformat": STR, "format": STR, "to_date_string": STR, "to_datetime_string": STR,
    "to_iso8601_string": STR, "date": DATE, "add": DATE, "subtract": DATE, "start_of": DATE, "end_of": DATE,
    "in_timezone": DATE, "timestamp": NUMBER, "weekday": NUMBER, "isoweekday": NUMBER,
}
DATE_ATTRIBUTES = ("year", "month", "day", "hour", "minute", "second", "day_of_week", "day_of_year")
STR_METHODS: dict[str, str] = {"replace": STR, "upper": STR, "lower": STR, "strip": STR}
FILTERS: dict[str, str] = {
    "int": NUMBER, "float": NUMBER, "round": NUMBER, "abs": NUMBER, "length": NUMBER,
    "string": STR, "upper": STR, "lower": STR, "trim": STR, "replace": STR, "default": ANY, "d": ANY,
    "ds": STR, "ds_nodash": STR, "ts": STR, "ts_nodash": STR, "ts_nodash_with_tz": STR,  # Airflow's own
}
DATE_FILTERS = ("ds", "ds_nodash", "ts", "ts_nodash", "ts_nodash_with_tz")
TESTS = ("defined", "undefined", "none", "number", "string")
# no `*` (`ds * 10**9` exhausts memory), `**` or `%` (`'%9999999d' % 1`); comparisons and `~` are fine
OPERATORS = (nodes.Add, nodes.Sub, nodes.Div, nodes.FloorDiv, nodes.Neg, nodes.Pos, nodes.Not, nodes.And,
             nodes.Or, nodes.Concat, nodes.Compare, nodes.CondExpr)

_ENV = jinja2.Environment(extensions=["jinja2.ext.do"])  # parses as Airflow's environment does


def allowed_summary() -> str:
    """The allow-list in one line (the hint of every refusal)."""
    names = [n for n in NAMES if n not in ("params", "macros") and not n.startswith("prev_")]
    return (f"allowed: {', '.join(names)}, prev_*_success, params.<name>, macros.{'/'.join(MACROS_ALLOWED)}; "
            f"filters: {', '.join(FILTERS)}; date methods: see docs/workflow.md, Templates")


@dataclass(frozen=True)
class Refusal:
    """Why a template is refused and where: `line` within the value, `needle` the text to point at."""

    message: str
    hint: str
    line: int
    needle: str


class _Refused(Exception):
    def __init__(self, node: nodes.Node, message: str, needle: str, hint: str = "") -> None:
        super().__init__(message)
        self.refusal = Refusal(message, hint or allowed_summary(), getattr(node, "lineno", 1) or 1, needle)


def is_template(value: str) -> bool:
    """Does Airflow treat `value` as more than literal text? (Jinja's default block delimiters.)"""
    return "{{" in value or "{%" in value or "{#" in value


def check(value: str, params: Collection[str] | None = None) -> Refusal | None:
    """None if `value` renders only allowed things; else the first refusal. `params`: the declared
    param names (None: any name)."""
    if not is_template(value):
        return None
    tree = parse(value)
    if isinstance(tree, Refusal):
        return tree
    try:
        for statement in tree.body:
            if not isinstance(statement, nodes.Output):
                tag = type(statement).__name__.lower()
                raise _Refused(statement, f"template statement `{{% {tag} %}}` is not allowed", "{%",
                               "use {{ expressions }} only: no {% %} statements")
            for child in statement.nodes:
                if not isinstance(child, nodes.TemplateData):
                    _Walker(params).kind(child)
    except _Refused as exc:
        return exc.refusal
    except RecursionError:
        return _TOO_DEEP
    return None


_TOO_DEEP = Refusal("template expression nests too deeply", "split it: nobody needs hundreds of levels", 1, "{")


@functools.lru_cache(maxsize=1024)  # a parse is ~60 us and templates repeat across manifests; trees are only read
def parse(value: str) -> nodes.Template | Refusal:
    """Jinja's syntax tree of `value` as Airflow's environment parses it, or why it cannot be parsed."""
    try:
        return _ENV.parse(value)
    except jinja2.TemplateSyntaxError as exc:
        return Refusal(f"template syntax error: {exc.message}",
                       "write a literal `{{` as {{ '{{' }}, or wrap the text in {% raw %}...{% endraw %}",
                       exc.lineno or 1, "{")
    except RecursionError:  # Jinja's parser recurses per level (Airflow could not render it either)
        return _TOO_DEEP


class _Walker:
    """Infers each expression's kind bottom-up and refuses any node, name, attribute or call not allowed."""

    def __init__(self, params: Collection[str] | None) -> None:
        self.params = params

    def kind(self, node: nodes.Node) -> str:
        method = getattr(self, f"_{type(node).__name__.lower()}", None)
        if method is not None:
            return method(node)
        if isinstance(node, OPERATORS):
            kinds = [self.kind(child) for child in node.iter_child_nodes()]
            return DATE if isinstance(node, (nodes.Add, nodes.Sub)) and DATE in kinds else ANY
        raise _Refused(node, f"template expression `{_describe(node)}` is not allowed", "{{")

    def _const(self, node: nodes.Const) -> str:
        return STR if isinstance(node.value, str) else NUMBER if isinstance(node.value, (int, float)) else ANY

    def _operand(self, node: nodes.Operand) -> str:
        return self.kind(node.expr)

    def _name(self, node: nodes.Name) -> str:
        if node.name not in NAMES:
            raise _Refused(node, f"template name `{node.name}` is not allowed", node.name)
        return NAMES[node.name]

    def _getattr(self, node: nodes.Getattr) -> str:
        return self._member(node, self.kind(node.node), node.attr)

    def _getitem(self, node: nodes.Getitem) -> str:
        base = self.kind(node.node)
        if base != PARAMS or not isinstance(node.arg, nodes.Const) or not isinstance(node.arg.value, str):
            raise _Refused(node, "template subscript `[...]` is only allowed as params['<name>']", "[")
        return self._member(node, base, node.arg.value)

    def _member(self, node: nodes.Node, base: str, attr: str) -> str:
        if base == PARAMS:
            if attr.startswith("_") or (self.params is not None and attr not in self.params):
                declared = ", ".join(sorted(self.params or ())) or "none"
                raise _Refused(node, f"params.{attr} is not a declared param", attr,
                               f"declare it under dag.params (declared: {declared})")
            return ANY
        allowed = {MACROS: MACROS_ALLOWED, DATE: {**DATE_METHODS, **dict.fromkeys(DATE_ATTRIBUTES, NUMBER)},
                   STR: STR_METHODS}.get(base, {})
        if attr not in allowed:
            raise _Refused(node, f"template attribute `.{attr}` is not allowed here", attr)
        return f"call:{allowed[attr]}" if base in (MACROS, STR) or attr in DATE_METHODS else allowed[attr]

    def _call(self, node: nodes.Call) -> str:
        callee = self.kind(node.node)
        if not callee.startswith("call:"):
            raise _Refused(node, f"template call `{_describe(node.node)}(...)` is not allowed", "(",
                           "only macros.timedelta/ds_add/ds_format and date/str methods can be called")
        self._arguments(node)
        return callee.removeprefix("call:")

    def _filter(self, node: nodes.Filter) -> str:
        base = self.kind(node.node) if node.node is not None else ANY
        if node.name not in FILTERS:
            raise _Refused(node, f"template filter `{node.name}` is not allowed", node.name)
        if node.name in DATE_FILTERS and base not in (DATE, ANY):
            raise _Refused(node, f"template filter `{node.name}` needs a date, not a {base}", node.name,
                           f"e.g. {{{{ data_interval_end | {node.name} }}}}, or use the context name `{node.name}`")
        self._arguments(node)
        return FILTERS[node.name]

    def _test(self, node: nodes.Test) -> str:
        if node.name not in TESTS:
            raise _Refused(node, f"template test `is {node.name}` is not allowed", node.name,
                           f"allowed tests: {', '.join(TESTS)}")
        self.kind(node.node)
        self._arguments(node)
        return ANY

    def _arguments(self, node: nodes.Call | nodes.Filter | nodes.Test) -> None:
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            raise _Refused(node, "template `*args`/`**kwargs` are not allowed", "*")
        for arg in node.args:
            self.kind(arg)
        for keyword in node.kwargs:
            self.kind(keyword.value)


def _describe(node: nodes.Node) -> str:
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        return f"{_describe(node.node)}.{node.attr}"
    return type(node).__name__
