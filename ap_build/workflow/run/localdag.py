"""The Airflow side of `workflow run`: a throwaway Airflow, the compiled DAG's pods, and a DAG of
DockerOperator tasks run by `dag.test()`.

Imports Airflow only inside functions: `configure_airflow()` must set Airflow's environment first.
Works on the Airflow 2.10 line (the platform's) and the Airflow 3 line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import importlib.metadata
import inspect
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from ap_build import resources
from ap_build.errors import UsageError
from ap_build.workflow.run.pods import RUN_LABEL, TASK_LABEL, ContainerSpec, container_from_pod

RUN_HINT = "install the optional extra: pip install 'ap-build[run]' (Airflow, its Kubernetes and Docker providers)"
DAG_FILE = "ap_build_local_dag.py"


class Reporter(Protocol):
    """Where the running tasks report (the live view)."""

    def started(self, task_id: str, container: str) -> None: ...
    def mask(self, text: str) -> str: ...
    def line(self, task_id: str, text: str) -> None: ...
    def error(self, task_id: str, text: str) -> None: ...
    def finished(self, task_id: str, exit_code: int | None, succeeded: bool) -> None: ...


# The runs of this process: run key -> (DAG, reporter, plan). Operators hold only the key (they are
# copied and serialized by Airflow), and the generated DAG file looks its DAG up here.
_RUNS: dict[str, tuple[Any, Reporter, RunPlan]] = {}
STOPPED: set[str] = set()  # runs stopped by Ctrl-C: their tasks that have not started yet never start


def airflow_version() -> str:
    """The installed Airflow's version; a clear error when the `run` extra is missing."""
    missing = []
    for dist in ("apache-airflow", "apache-airflow-providers-cncf-kubernetes", "apache-airflow-providers-docker"):
        try:
            importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist)
    if missing:
        raise UsageError(f"`workflow run` needs {', '.join(missing)}", hint=RUN_HINT)
    return importlib.metadata.version("apache-airflow")


def cache_dir(version: str) -> Path:
    """`workflow run`'s Airflow home for one Airflow version, in ap-build's cache folder."""
    return resources.cache_dir() / f"airflow-{version}"


def configure_airflow(run_dir: Path) -> None:
    """Point a fresh, isolated Airflow at `run_dir` (before Airflow is imported): its own home, DAG folder,
    SQLite metadata DB and logs. The user's own AIRFLOW_* settings must not leak in."""
    for key in [k for k in os.environ if k.startswith("AIRFLOW")]:
        del os.environ[key]
    for sub in ("home", "dags", "logs"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    os.environ.update({
        "AIRFLOW_HOME": str(run_dir / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(run_dir / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{run_dir / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAG_RUN_CONF_OVERRIDES_PARAMS": "True",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(run_dir / "logs"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    })
    if "airflow.settings" in sys.modules:  # imported already (a run server's child): re-read the paths
        from airflow import settings

        settings.configure_vars()
        settings.reconfigure_orm()  # a new engine on this run's DB (the server never opened one)


def warm_up(run_dir: Path) -> None:
    """What every run needs once per process, done ahead (by the run server, before it forks a child per
    run): Airflow configured on `run_dir` and imported with both providers, and on Airflow 3 the in-process
    execution API app with its versioned routes built (built lazily on the first request otherwise: ~2/3
    of its cost), and the ORM's mappers configured. Starts no thread and opens no connection: the children
    are forked from this state."""
    configure_airflow(run_dir)
    import docker  # noqa: F401
    from airflow.models import import_all_models
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator  # noqa: F401
    from kubernetes.utils import quantity  # noqa: F401
    from sqlalchemy.orm import configure_mappers

    import_all_models()
    configure_mappers()  # the ORM's mappers, configured on first query otherwise
    _operator_class()
    try:
        from airflow.sdk.execution_time.supervisor import in_process_api_server
    except ImportError:  # Airflow 2.10: dag.test() runs tasks without an API
        return
    import a2wsgi  # noqa: F401
    import httpx  # noqa: F401

    app = in_process_api_server().app
    if getattr(app, "_cadwyn_initialized", True) is False:  # Cadwyn's versioned routers, on first request
        app._cadwyn_initialize()
    if getattr(app, "middleware_stack", "") is None:  # Starlette's, on first request too
        app.middleware_stack = app.build_middleware_stack()


def prepare_db(run_dir: Path, version: str,
               on_cold: Callable[[], contextlib.AbstractContextManager[Any]]) -> tuple[bool, str | None]:
    """Give the run a migrated metadata DB: a copy of the cached one, or (first run of this Airflow version)
    migrate a new one and cache it -> (cold, why the cache is unusable: then the run migrates its own DB)."""
    import fcntl

    cache = cache_dir(version)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        lock = open(cache / ".lock", "w")  # noqa: SIM115 - closed below
    except OSError as exc:
        with on_cold():
            _migrate()
        return True, f"{cache}: {exc.strerror or type(exc).__name__}"
    template = cache / "airflow.db"
    target = run_dir / "airflow.db"
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if template.is_file():
            shutil.copyfile(template, target)
            return False, None
        with on_cold():
            _migrate()
        tmp = cache / f".airflow.db.{os.getpid()}"
        with contextlib.closing(sqlite3.connect(target)) as src, contextlib.closing(sqlite3.connect(tmp)) as dst:
            src.backup(dst)  # consistent, whatever is still in Airflow's connection or journal
        os.replace(tmp, template)
        return True, None


def _migrate() -> None:
    from airflow.utils import db

    db.initdb()


def mask_in_airflow(values: list[str]) -> None:
    """Airflow's own secrets masker hides the values in anything Airflow logs."""
    try:
        from airflow.sdk.log import mask_secret  # Airflow 3
    except ImportError:
        from airflow.utils.log.secrets_masker import mask_secret  # Airflow 2.10
    for value in values:
        mask_secret(value)


def compiled_pods(source: str) -> tuple[list[ContainerSpec], Any]:
    """Execute a compiled DAG file's source and build each KubernetesPodOperator's pod, as the
    platform would, without a cluster -> (container specs in dependency order, the compiled DAG).
    Notification callbacks are never called: only the pods, params and schedule are used."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    namespace: dict[str, Any] = {"__name__": "ap_build_compiled_dag"}
    exec(compile(source, "<compiled workflow>", "exec"), namespace)
    dags = [v for v in namespace.values() if type(v).__name__ == "DAG" and hasattr(v, "task_dict")]
    if len(dags) != 1:
        raise UsageError(f"the compiled workflow defines {len(dags)} DAGs, expected one")
    dag = dags[0]
    dry_run = "dry_run" in inspect.signature(KubernetesPodOperator.build_pod_request_obj).parameters
    specs = []
    for task in dag.topological_sort() if hasattr(dag, "topological_sort") else dag.tasks:
        if not isinstance(task, KubernetesPodOperator):
            continue
        if dry_run:
            pod = task.build_pod_request_obj(dry_run=True)
        else:  # older providers ask the hook whether it runs in a cluster, which needs a kube config
            task.hook._is_in_cluster = False
            pod = task.build_pod_request_obj()
        specs.append(container_from_pod(task.task_id, pod, task.upstream_task_ids))
    return specs, dag


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What the local DAG runs (plain values; secrets stay in memory, never in files)."""

    key: str
    dag_id: str
    schedule: Any
    start_date: dt.datetime
    params: dict[str, Any]
    specs: list[ContainerSpec]
    secrets: dict[str, str]
    engine_url: str
    api_version: str
    extra_env: dict[str, str]
    gpu: bool
    present_images: frozenset[str] = frozenset()  # inspected by the run's checks: no presence check per task


def _operator_class() -> type:
    from airflow.providers.docker.operators.docker import DockerOperator

    class PodContainerOperator(DockerOperator):
        """DockerOperator with the pod's settings it has no parameter for (hard CPU limit, dropped
        capabilities, no-new-privileges) and its output streamed to ap-build's view."""

        def __init__(self, *, run_key: str, host_config: dict[str, Any], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.run_key = run_key
            self.host_config = host_config

        @property
        def cli(self) -> Any:
            _, reporter, plan = _RUNS[self.run_key]
            return _EngineClient(super().cli, self.host_config, reporter, self.task_id, plan.present_images)

        def execute(self, context: Any) -> Any:
            reporter = _RUNS[self.run_key][1]
            if self.run_key in STOPPED:
                raise RuntimeError("the run was interrupted (Ctrl-C)")
            reporter.started(self.task_id, self.container_name or "")
            succeeded = False
            try:
                result = super().execute(context)
                succeeded = True
                return result
            except Exception as exc:
                if type(exc).__name__ != "DockerContainerFailedException":  # not the program's own exit code
                    reporter.error(self.task_id, f"{type(exc).__name__}: {exc}")
                raise
            finally:
                reporter.finished(self.task_id, self._exit_code(), succeeded)

        def _exit_code(self) -> int | None:
            """The program's exit code; None when its container never started (an engine that refused to
            start it reports 0 for a container that ran nothing)."""
            if not self.container:
                return None
            with contextlib.suppress(Exception):
                state = self.cli.inspect_container(self.container["Id"])["State"]
                if str(state.get("StartedAt") or "").startswith("0001-"):
                    return None
                return int(state["ExitCode"])
            return None

    return PodContainerOperator


class _EngineClient:
    """The engine client DockerOperator talks to, adding host settings to every container it creates
    and passing the container's output line by line, secret values masked, to the reporter and on to
    DockerOperator (so Airflow's own log never holds a secret either)."""

    def __init__(self, client: Any, host_config: dict[str, Any], reporter: Reporter, task_id: str,
                 present: frozenset[str] = frozenset()) -> None:
        self._client, self._host, self._reporter, self._task = client, host_config, reporter, task_id
        self._present = present

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def images(self, name: str | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        """DockerOperator asks whether the image is here (else it pulls): one inspect, not a listing of every
        image, which a shared engine may fail while another client removes an image."""
        import docker.errors

        if name is None:
            return self._client.images(**kwargs)
        if name in self._present:
            return [{"RepoTags": [name]}]
        try:
            return [self._client.inspect_image(name)]
        except docker.errors.NotFound:
            return []

    def create_host_config(self, **kwargs: Any) -> Any:
        return self._client.create_host_config(**{**kwargs, **self._host})

    def attach(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        return self._tee(self._client.attach(*args, **kwargs))

    def logs(self, *args: Any, **kwargs: Any) -> Any:  # older providers stream with logs(follow=True)
        result = self._client.logs(*args, **kwargs)
        return self._tee(result) if kwargs.get("stream") else result

    def _tee(self, stream: Any) -> Iterator[bytes]:
        pending = ""
        for chunk in stream:
            pending += chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else str(chunk)
            *lines, pending = pending.split("\n")
            for line in lines:
                yield self._pass(line) + b"\n"
        if pending:
            yield self._pass(pending)

    def _pass(self, line: str) -> bytes:
        masked = self._reporter.mask(line.rstrip("\r"))
        self._reporter.line(self._task, masked)
        return masked.encode()


def operator_kwargs(spec: ContainerSpec, plan: RunPlan) -> dict[str, Any]:
    """DockerOperator arguments for one task: the pod's settings, mapped one to one."""
    from docker.types import DeviceRequest

    container = f"ap-build-{spec.pod_name}-{plan.key[:8]}"[:128]
    host: dict[str, Any] = {}
    if spec.nano_cpus:
        host["nano_cpus"] = spec.nano_cpus
    if spec.cap_drop:
        host["cap_drop"] = list(spec.cap_drop)
    if spec.no_new_privileges:
        host["security_opt"] = ["no-new-privileges"]
    return {
        "task_id": spec.task_id,
        "image": spec.image,
        "container_name": container,
        "docker_url": plan.engine_url,
        "api_version": plan.api_version,  # the engine's, known already: no version request per task
        "environment": dict(spec.env),  # a template field: Airflow renders {{ params.x }}, {{ run_id }}, ...
        "private_environment": {**plan.extra_env, **{k: plan.secrets[k] for k in spec.secret_env}},
        "mem_limit": spec.mem_bytes,
        "cpus": spec.nano_cpus / 1e9 if spec.nano_cpus else 1.0,
        "extra_hosts": dict(spec.extra_hosts) or None,
        "user": spec.user,
        "working_dir": spec.working_dir,
        "entrypoint": spec.entrypoint,
        "command": spec.command,
        "privileged": spec.privileged,
        "cap_add": list(spec.cap_add) or None,
        "device_requests": [DeviceRequest(count=1, capabilities=[["gpu"]])] if spec.gpu and plan.gpu else None,
        "mount_tmp_dir": False,  # the pod has no such volume
        "auto_remove": "never",  # ap-build removes the containers after the run (or keeps them: --keep)
        "labels": {**spec.labels, RUN_LABEL: plan.key, TASK_LABEL: spec.task_id},
        "retries": 0,
        "do_xcom_push": False,
        "run_key": plan.key,
        "host_config": host,
    }


def build_dag(plan: RunPlan, reporter: Reporter) -> Any:
    """The local DAG: one container task per pod, the same task ids and dependencies, no callbacks."""
    try:
        from airflow.sdk import DAG
    except ImportError:  # Airflow 2.10
        from airflow import DAG
    operator = _operator_class()
    with DAG(dag_id=plan.dag_id, schedule=plan.schedule, start_date=plan.start_date, catchup=False,
             params=plan.params, max_active_runs=1, tags=["ap-build-run"]) as dag:
        tasks = {s.task_id: operator(**operator_kwargs(s, plan)) for s in plan.specs}
        for spec in plan.specs:
            for up in spec.upstream:
                tasks[up] >> tasks[spec.task_id]
    _RUNS[plan.key] = (dag, reporter, plan)
    return dag


def write_dag_file(run_dir: Path, key: str) -> Path:
    """The DAG folder's file: Airflow 3's dag.test() parses the DAG folder; it finds this run's DAG."""
    path = run_dir / "dags" / DAG_FILE
    path.write_text(f'"""airflow DAG of `ap-build workflow run` (throwaway)."""\n'
                    f"from ap_build.workflow.run.localdag import registered_dag\n\n"
                    f"dag = registered_dag({key!r})\n")
    return path


def registered_dag(key: str) -> Any:
    return _RUNS[key][0]


def forget(key: str) -> None:
    _RUNS.pop(key, None)


def run_dag(dag: Any, logical_date: dt.datetime, conf: dict[str, str]) -> tuple[str, str, dict[str, str]]:
    """`dag.test()` -> (run id, DAG run state, {task id: state})."""
    params = inspect.signature(dag.test).parameters
    kwargs: dict[str, Any] = {"run_conf": conf or None}
    kwargs["logical_date" if "logical_date" in params else "execution_date"] = logical_date
    dr = dag.test(**kwargs)
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state) or "none") for ti in dr.get_task_instances()}
    return dr.run_id, str(getattr(dr.state, "value", dr.state)), states
