"""Load a DAG folder with Airflow's DagBag and dump every task's DAG, task and pod attributes, normalised
as the parity reference is (shared/corpus/platform/README.md). Standalone (no ap_build import): it runs
in whichever venv's Python calls it, Airflow 2.10 (.venv-airflow2) or the Airflow 3 line (.venv).

usage: python airflow_dump.py --out OUT.json [--kube-prefix PREFIX] ENV_FOLDER...
  Each ENV_FOLDER (one environment's DAG folder, its own DagBag) holds `<project>/<workflow>.py`; task keys
  are `<environment>/<project folder>/<workflow>/<task_id>`. A task's `config_file` under PREFIX (MWAA's
  dags folder) is looked up in its ENV_FOLDER instead, where a throw-away kube config is written, as on MWAA.
"""

from __future__ import annotations

import argparse
import datetime as dt
import enum
import json
import logging
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

KUBE_CONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: mwaa}}]
current-context: c
users: [{name: u, user: {token: not-a-token}}]
"""
DAG_FIELDS = (
    "dag_id", "description", "start_date", "end_date", "catchup", "is_paused_upon_creation", "max_active_runs",
    "max_active_tasks", "max_consecutive_failed_dag_runs", "dagrun_timeout", "render_template_as_native_obj",
    "fail_stop", "on_failure_callback", "on_success_callback", "sla_miss_callback", "access_control",
    "template_searchpath", "owner_links", "dag_display_name", "default_view", "orientation", "owner",
    "schedule_interval", "timezone", "default_args",
)
TASK_FIELDS = (
    "active_deadline_seconds", "base_container_name", "cluster_context", "config_file", "container_logs",
    "deferrable", "depends_on_past", "do_xcom_push", "doc_md", "email", "email_on_failure", "email_on_retry",
    "end_date", "execution_timeout", "executor_config", "get_logs", "ignore_first_depends_on_past", "in_cluster",
    "inlets", "kubernetes_conn_id", "log_pod_spec_on_failure", "max_active_tis_per_dag", "max_retry_delay",
    "on_execute_callback", "on_failure_callback", "on_finish_action", "on_retry_callback", "on_skipped_callback",
    "on_success_callback", "outlets", "owner", "pod_template_file", "poll_interval", "pool", "pool_slots",
    "priority_weight", "queue", "random_name_suffix", "reattach_on_restart", "retries", "retry_delay",
    "retry_exponential_backoff", "run_as_user", "schedule_timeout_seconds", "skip_on_exit_code", "sla",
    "start_date", "startup_check_interval_seconds", "startup_timeout_seconds", "task_id",
    "termination_grace_period", "trigger_rule", "wait_for_downstream", "weight_rule",
)
CALLBACKS = re.compile(r"(^|_)(on_\w+_callback|sla_miss_callback)$")
ABSENT = "<absent>"  # the attribute does not exist on this Airflow line: not compared


def norm(value: Any, api: Any) -> Any:
    """The reference's normalisation (README: "Normalisation")."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dt.timedelta):
        return {"timedelta_s": value.total_seconds()}
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, enum.Enum) and isinstance(value, str):
        return value.value
    name = type(value).__name__
    if name in ("Dataset", "Asset"):
        out = {"dataset": value.uri}
        if getattr(value, "extra", None):
            out["extra"] = norm(value.extra, api)
        return out
    if name in ("DatasetAll", "AssetAll", "DatasetAny", "AssetAny"):
        key = "all" if name.endswith("All") else "any"
        return {key: [norm(o, api) for o in value.objects]}
    if hasattr(value, "openapi_types"):  # a Kubernetes client model
        return api.sanitize_for_serialization(value)
    if isinstance(value, dict):
        return {str(k): (callbacks(v, api) if CALLBACKS.search(str(k)) else norm(v, api)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [norm(v, api) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((norm(v, api) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    return f"{type(value).__module__}.{type(value).__qualname__}:" + re.sub(r" at 0x[0-9a-f]+", "", repr(value))


def callbacks(value: Any, api: Any) -> Any:
    """Callbacks by effect: always a list; a notifier by its class and public attributes."""
    if not value:  # none: Airflow 3 keeps an empty list where Airflow 2 keeps None
        return None
    out = []
    for cb in value if isinstance(value, (list, tuple)) else [value]:
        if hasattr(cb, "notify"):  # a BaseNotifier
            attrs = {k: norm(v, api) for k, v in vars(cb).items() if not k.startswith("_") and not callable(v)}
            out.append({"class": f"{type(cb).__module__}.{type(cb).__name__}", **attrs})
        elif hasattr(cb, "__qualname__"):
            out.append({"function": cb.__qualname__})
        else:
            out.append(norm(cb, api))
    return out


def dag_attrs(dag: Any, api: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in DAG_FIELDS:
        try:
            v = getattr(dag, f)
        except Exception:  # a property that raises on this line counts as absent
            out[f] = ABSENT
            continue
        out[f] = callbacks(v, api) if CALLBACKS.search(f) else norm(v, api)
    out["timezone"] = str(dag.timezone.name if hasattr(dag.timezone, "name") else dag.timezone)
    out["tags"] = sorted(dag.tags or [])
    params = dag.params
    out["params"] = {k: {"value": norm(params.get_param(k).value, api), "schema": norm(params.get_param(k).schema, api),
                         "description": params.get_param(k).description} for k in params}
    for f in ("user_defined_macros", "user_defined_filters"):
        out[f] = sorted(getattr(dag, f, None) or [])
    tt = dag.timetable
    if not hasattr(tt, "serialize"):  # an Airflow 3 SDK timetable: the scheduler's (core) one
        from airflow.serialization.decoders import decode_timetable
        from airflow.serialization.encoders import encode_timetable

        tt = decode_timetable(encode_timetable(tt))
    ser = {k: v for k, v in tt.serialize().items() if k not in ("dataset_condition", "asset_condition")}
    cls = type(tt).__name__.replace("Asset", "Dataset")
    out["timetable"] = {"class": cls, "summary": tt.summary.replace("Asset", "Dataset"), **norm(ser, api)}
    cond = getattr(tt, "dataset_condition", None) or getattr(tt, "asset_condition", None)
    out["dataset_condition"] = norm(cond, api) if cond is not None and "Triggered" in cls else None
    return out


def task_attrs(task: Any, api: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in TASK_FIELDS:
        if not hasattr(task, f):
            out[f] = ABSENT
            continue
        v = getattr(task, f)
        out[f] = callbacks(v, api) if CALLBACKS.search(f) else norm(v, api)
    out["upstream"] = sorted(task.upstream_task_ids)
    out["operator"] = f"{type(task).__module__}.{type(task).__name__}"
    return out


def pod_of(task: Any, api: Any, folder: Path, prefix: str) -> Any:
    if not hasattr(task, "build_pod_request_obj"):
        return None
    if task.config_file and prefix and task.config_file.startswith(prefix):
        task.config_file = str(folder) + task.config_file[len(prefix):]
    try:
        pod = api.sanitize_for_serialization(task.build_pod_request_obj())
    except Exception as exc:  # a pod that cannot be built is a difference, reported as one
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    if task.random_name_suffix:
        pod["metadata"]["name"] = re.sub(r"-[a-z0-9]{8}$", "-<random>", pod["metadata"]["name"])
    return pod


def dump_folder(folder: Path, prefix: str, dagbag: Any, api: Any) -> dict[str, Any]:
    (folder / ".kube").mkdir(exist_ok=True)
    (folder / ".kube" / "config").write_text(KUBE_CONFIG)
    try:
        bag = dagbag(dag_folder=str(folder), include_examples=False)
    except TypeError:  # Airflow 3.3: no examples argument (AIRFLOW__CORE__LOAD_EXAMPLES is False)
        bag = dagbag(dag_folder=str(folder))
    result: dict[str, Any] = {"import_errors": {f"{folder.name}/{Path(k).relative_to(folder)}": str(v)[-2000:]
                                                for k, v in bag.import_errors.items()}, "tasks": {}}
    for dag in bag.dags.values():
        rel = Path(dag.fileloc).resolve().relative_to(folder)
        stem = "/".join((folder.name, *rel.with_suffix("").parts))  # the folder is the environment
        d = dag_attrs(dag, api)
        for task in dag.tasks:
            result["tasks"][f"{stem}/{task.task_id}"] = {"dag": d, "task": task_attrs(task, api),
                                                         "pod": pod_of(task, api, folder, prefix)}
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--kube-prefix", default="")
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="airflow-home-") as home:
        return dump(args, home)


def _cheap_client_configuration() -> None:
    """Every Kubernetes client model makes its own copy of the client `Configuration` (and the provider
    deep-copies pods while building them, copying them again); each copy re-applies the client's log
    levels, and each `setLevel` clears the caches of all of Airflow's loggers: ~80% of this run. Setting
    the level a logger already has changes nothing, so that is skipped; copies share the Configuration
    (no pod field comes from it and nothing changes it here). Same pods (checked), several times sooner."""
    from kubernetes.client.configuration import Configuration

    set_level = logging.Logger.setLevel

    def same_or_set(self: logging.Logger, level: int | str) -> None:
        if self.level != logging._checkLevel(level):  # type: ignore[attr-defined]
            set_level(self, level)

    logging.Logger.setLevel = same_or_set  # type: ignore[method-assign]
    Configuration.__deepcopy__ = lambda self, memo: self  # type: ignore[method-assign]


def dump(args: argparse.Namespace, home: str) -> int:
    os.environ.update({"AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                       "AIRFLOW__CORE__UNIT_TEST_MODE": "True", "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
                       "KUBECONFIG": os.devnull,
                       "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps({"conn_type": "kubernetes"})})
    _cheap_client_configuration()
    import airflow.providers.cncf.kubernetes.operators.pod  # pre-imported, as the DAG processor does
    from kubernetes.client import ApiClient

    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.1+
    except ImportError:
        from airflow.models.dagbag import DagBag
    api = ApiClient()
    out: dict[str, Any] = {"airflow": airflow.__version__, "import_errors": {}, "tasks": {}}
    for folder in args.folders:
        one = dump_folder(folder.resolve(), args.kube_prefix, DagBag, api)
        out["import_errors"].update(one["import_errors"])
        out["tasks"].update(one["tasks"])
    args.out.write_text(json.dumps(out, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
