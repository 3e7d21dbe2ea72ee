"""Compare dumped DAG/task/pod attributes with the platform's reference (shared/corpus/platform/pods.json.gz),
field by field, as its README says: every `dag` field once per DAG (`default_args` key by key), every `task`
field but `operator` and `upstream_task_ids`, the whole pod exactly; the allowed differences left out."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ABSENT = "<absent>"  # the dumper's mark for an attribute this Airflow line does not have: not compared
MISSING = "<missing>"  # a key one side has and the other has not: a difference
NOT_COMPARED_TASK = {"operator", "upstream_task_ids"}
# the reference's allowed differences (README "How a test should compare", item 3; docs/workflow.md)
ALLOWED = {"dag.tags", "dag.dataset_condition", "dag.default_args.retry_delay", "dag.doc_md",
           "pod.spec.securityContext"}


def load_reference(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt") as fh:
        return json.load(fh)


@dataclass
class Report:
    equal: int = 0
    differing: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    fields: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, path: str, key: str, want: Any, got: Any) -> None:
        self.fields[path] += 1
        self.examples.setdefault(path, f"{key}: reference {_short(want)}, compiled {_short(got)}")

    def text(self, limit: int = 40) -> str:
        lines = [f"{self.equal} tasks equal, {self.differing} differing, {len(self.missing)} missing, "
                 f"{len(self.extra)} not in the reference"]
        lines += [f"  {p} x{n}: {self.examples[p]}" for p, n in self.fields.most_common(limit)]
        lines += [f"  missing: {k}" for k in self.missing[:5]] + [f"  extra: {k}" for k in self.extra[:5]]
        return "\n".join(lines)


def _short(value: Any, width: int = 160) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def _label(item: Any, i: int) -> str:
    return str(item["name"]) if isinstance(item, dict) and "name" in item else str(i)


_line: set[str] = set()


def diff(want: Any, got: Any, path: str, out: list[tuple[str, Any, Any]]) -> None:
    """Field paths where `got` differs from `want` (lists of named items are indexed by name)."""
    if path in ALLOWED or path in _line or got == ABSENT:
        return
    if isinstance(want, dict) and isinstance(got, dict):
        for k in sorted(set(want) | set(got)):
            diff(want.get(k, MISSING), got.get(k, MISSING), f"{path}.{k}", out)
        return
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        named = all(isinstance(x, dict) and "name" in x for x in want + got)
        if named and [x["name"] for x in want] != [x["name"] for x in got]:
            out.append((f"{path}[*].name (order)", [x["name"] for x in want], [x["name"] for x in got]))
            return
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            diff(w, g, f"{path}[{_label(w, i)}]", out)
        return
    if want != got:
        out.append((path, want, got))


# On the Airflow 3 line (cncf.kubernetes 10, slack 9), what is the installed line's own default rather than
# what a DAG file says; docs/workflow.md lists them.
AIRFLOW3_LINE = {
    "pod.metadata.labels.airflow_version",  # the running Airflow's version
    "task.schedule_timeout_seconds",  # provider 10 copies startup_timeout_seconds (600) where 9 kept None
    "dag.start_date",  # Airflow 3's DAG takes it from default_args (the tasks' start_date is compared)
    "dag.default_args.ignore_first_depends_on_past",  # set to Airflow 2's default; the task field is compared
}


def _line_defaults(notifier: dict[str, Any]) -> None:
    notifier.pop("context", None)
    if "icon_url" in notifier:
        notifier["icon_url"] = ABSENT
WEIGHT_RULE_2 = ("airflow.task.priority_strategy._DownstreamPriorityWeightStrategy:"
                 "<airflow.task.priority_strategy._DownstreamPriorityWeightStrategy object>")
SMTP = "airflow.providers.smtp.notifications.smtp.SmtpNotifier"


def _emails_as_notifiers(args: dict[str, Any], drop_empty: bool) -> None:
    """Airflow 3 mails through SmtpNotifier callbacks on failure and retry instead of the deprecated
    `email`: turn them back into the `email` they replace when both events carry the same recipients,
    so recipients and events are what is compared. Other notifiers lose their line defaults."""
    found = {}
    for event in ("on_failure_callback", "on_retry_callback"):
        cbs = args.get(event)
        if not isinstance(cbs, list):
            continue
        found[event] = [cb["to"] for cb in cbs if isinstance(cb, dict) and cb.get("class") == SMTP]
        rest = [cb for cb in cbs if not (isinstance(cb, dict) and cb.get("class") == SMTP)]
        for cb in rest:
            _line_defaults(cb)
        args[event] = rest or None
        if drop_empty and not rest:
            args.pop(event)
    tos = [to for event in found.values() for to in event]
    if len(tos) == 2 and tos[0] == tos[1] and all(found.values()):
        args["email"] = tos[0]


def airflow3_view(got: dict[str, Any]) -> dict[str, Any]:
    """A task dumped on the Airflow 3 line, put in the reference's terms (see AIRFLOW3_LINE)."""
    got = json.loads(json.dumps(got))
    if got["task"].get("weight_rule") == "downstream":
        got["task"]["weight_rule"] = WEIGHT_RULE_2
    _emails_as_notifiers(got["task"], drop_empty=False)
    _emails_as_notifiers(got["dag"]["default_args"], drop_empty=True)
    for cb in ("on_success_callback", "on_skipped_callback"):
        for args in (got["task"], got["dag"]["default_args"]):
            for notifier in args.get(cb) or []:
                _line_defaults(notifier)
    return got


def compare(reference: dict[str, Any], actual: dict[str, Any], keys: set[str] | None = None,
            airflow: int = 2) -> Report:
    """Every reference task (or those in `keys`) against the dumped tasks of an Airflow `airflow` line."""
    report = Report()
    wanted = reference if keys is None else {k: v for k, v in reference.items() if k in keys}
    seen_dags: set[str] = set()
    _line.clear()
    _line.update(AIRFLOW3_LINE if airflow == 3 else ())
    for key, ref in sorted(wanted.items()):
        got = actual.get(key)
        if got is None:
            report.missing.append(key)
            continue
        if airflow == 3:
            got = airflow3_view(got)
        found: list[tuple[str, Any, Any]] = []
        dag_key = key.rsplit("/", 1)[0]
        if dag_key not in seen_dags:
            seen_dags.add(dag_key)
            diff(ref["dag"], got["dag"], "dag", found)
        task_ref = {k: v for k, v in ref["task"].items() if k not in NOT_COMPARED_TASK}
        task_got = {k: v for k, v in got["task"].items() if k not in NOT_COMPARED_TASK}
        diff(task_ref, task_got, "task", found)
        diff(ref["pod"], got["pod"], "pod", found)
        if found:
            report.differing += 1
            for path, w, g in found:
                report.add(path, key, w, g)
        else:
            report.equal += 1
    report.extra = sorted(set(actual) - set(reference))
    return report
