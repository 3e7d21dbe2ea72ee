"""`ap-build workflow run`: run a workflow on this machine with real Airflow and real containers.

Everything that can stop the run is checked before any container starts: the manifest, params,
secrets, the engine, the image, the image's user, Airflow. Then the manifest is compiled as for the
platform, each task's pod is built and turned into a container (localdag.py), and Airflow's
`dag.test()` runs the DAG on a throwaway metadata DB (a copy of one migrated once per Airflow version).
Airflow's own output goes to a log file; the view shows task states and the containers' output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Protocol

from rich.console import Console

from ap_build.errors import ApBuildError, CheckFailed, EngineError, ToolError, UsageError
from ap_build.workflow import codegen, local, localdag, model
from ap_build.workflow.runview import LocalUI, RunView, summary_table  # noqa: F401 (the CLI's)
from ap_build.workflow.settings import identify, load_settings
from ap_build.workflow.validate import Problem, validate_file

AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CREDENTIAL_EXPIRATION")


class InvalidManifest(UsageError):
    """The manifest does not validate: nothing can run (exit 2); the problems are listed."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"the manifest is invalid ({len(problems)} problem(s))",
                         hint="fix them (ap-build workflow validate) and run again")
        self.problems = problems


@dataclasses.dataclass
class RunOptions:
    manifest: Path
    image: str | None = None
    secrets: Path | None = None
    params: list[str] = dataclasses.field(default_factory=list)
    task: str | None = None
    with_upstream: bool = False
    logical_date: str | None = None
    aws_profile: str | None = None
    aws_env: bool = False
    keep: bool = False
    config: Path | None = None
    environment: str | None = None
    project: str | None = None
    workflow: str | None = None
    server: bool = True  # through the warm run server (runserver.py) when it can


@dataclasses.dataclass
class TaskResult:
    task: str
    state: str
    duration_s: float | None
    exit_code: int | None
    container: str


@dataclasses.dataclass
class RunResult:
    dag_id: str
    run_id: str
    logical_date: str
    state: str
    image: str
    airflow: str
    cold_start: bool
    seconds: float
    tasks: list[TaskResult]
    kept: list[str]
    log: str | None
    server: str | None = None  # the run server's directory (runclient.py); None: run in this process
    server_pid: int | None = None

    @property
    def ok(self) -> bool:
        return all(t.state == "success" for t in self.tasks)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, "ok": self.ok, **dataclasses.asdict(self)}


def aws_credentials(profile: str | None, from_env: bool) -> dict[str, str]:
    """Credentials for the containers (off by default): the host's AWS_* variables, or a profile's
    credentials resolved on the host by the AWS CLI (SSO and role profiles included)."""
    creds: dict[str, str] = {}
    if from_env:
        creds.update({k: os.environ[k] for k in AWS_VARS if os.environ.get(k)})
        if not creds:
            raise UsageError("--aws-env: none of the host's AWS credential variables is set",
                             hint=f"set {', '.join(AWS_VARS[:3])}, or use --aws-profile NAME")
    if profile:
        aws = shutil.which("aws")
        if aws is None:
            raise ToolError("--aws-profile needs the AWS CLI (v2) on this machine",
                            hint="install it, or export credentials and use --aws-env")
        proc = subprocess.run([aws, "configure", "export-credentials", "--profile", profile, "--format", "process"],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise UsageError(f"--aws-profile {profile}: the AWS CLI could not resolve credentials",
                             hint=(proc.stderr.strip().splitlines() or ["run `aws sso login`?"])[-1][:200])
        data = json.loads(proc.stdout)
        creds.update({"AWS_ACCESS_KEY_ID": data["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": data["SecretAccessKey"]})
        if data.get("SessionToken"):
            creds["AWS_SESSION_TOKEN"] = data["SessionToken"]
    return creds


@contextlib.contextmanager
def airflow_output_to(log: Path) -> Iterator[IO[str]]:
    """Send everything written to this process's stdout/stderr (Airflow's logs, warnings, tracebacks) to
    `log`; yield a stream on the real stderr for the view."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    view = os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding="utf-8", errors="replace")
    with open(log, "a", encoding="utf-8") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield view
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            view.close()


def remove_containers(engine: Any, key: str) -> None:
    """Stop and remove every container of this run (also after Ctrl-C)."""
    import docker.errors

    def remove(container: Any) -> None:
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True)

    with contextlib.suppress(docker.errors.DockerException):
        found = engine.client.containers.list(all=True, sparse=True, filters={"label": f"{local.RUN_LABEL}={key}"})
        with ThreadPoolExecutor(max_workers=8) as pool:  # each removal waits on the engine: all at once
            list(pool.map(remove, found))


@contextlib.contextmanager
def stop_on_ctrl_c(engine: Any, key: str) -> Iterator[threading.Event]:
    """Ctrl-C during the run: remove the running containers (their tasks fail, no new task starts) and let
    Airflow finish the run cleanly; the caller then exits as interrupted. A second Ctrl-C stops at once."""
    interrupted = threading.Event()
    localdag.STOPPED.discard(key)

    def handler(signum: int, frame: Any) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        localdag.STOPPED.add(key)
        threading.Thread(target=remove_containers, args=(engine, key), daemon=True).start()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: Ctrl-C is not ours to handle
        yield interrupted
        return
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)
        localdag.STOPPED.discard(key)


def engine_has_gpu(engine: Any) -> bool:
    """Docker's NVIDIA runtime, or a CDI spec for NVIDIA devices (Podman)."""
    if "nvidia" in (engine.api.info().get("Runtimes") or {}):
        return True
    return any(Path(p, "nvidia.yaml").exists() for p in ("/etc/cdi", "/var/run/cdi"))


@dataclasses.dataclass
class Checked:
    """Everything checked before anything runs."""

    ident: Any
    settings: Any
    manifest: model.Manifest
    logical_date: dt.datetime
    conf: dict[str, str]
    secrets: dict[str, str]
    extra_env: dict[str, str]
    mask: local.Masker
    airflow: str
    engine: Any
    image: str
    user_problem: str | None


def preflight(opts: RunOptions) -> Checked:
    """The manifest, params, secrets, credentials, Airflow, the engine and the image: each problem is an
    error before any container starts (exit 2)."""
    from ap_build.engine import Engine

    ident = identify(opts.manifest, opts.environment, opts.project, opts.workflow)
    settings = load_settings(opts.config)
    checked = validate_file(opts.manifest, ident)
    if checked.problems or checked.manifest is None:
        raise InvalidManifest(checked.problems)
    m = checked.manifest
    if m.dag.python_dag:
        raise UsageError(f"{opts.manifest}: python_dag: true (a DAG file of your own) cannot be run by ap-build",
                         hint="run your dag.py with Airflow's `dag.test()`")
    if opts.with_upstream and opts.task is None:
        raise UsageError("--with-upstream needs --task NAME", hint="e.g. --task load --with-upstream")
    if opts.task is not None:
        local.check_task(opts.task, list(m.dag.tasks) if m.dag.tasks is not None else ["main"])
    logical_date = local.parse_logical_date(opts.logical_date, m.dag.start_date, m.dag.end_date)
    conf = local.parse_params(opts.params, {k: codegen.as_text(v) for k, v in m.dag.params.items()})
    secrets = local.secret_values(list(m.secrets), opts.secrets)
    extra_env = aws_credentials(opts.aws_profile, opts.aws_env)
    version = localdag.airflow_version()
    engine = Engine.connect()
    image = opts.image or codegen.image(m, settings)
    try:
        inspected = engine.inspect(image)  # one engine call on the usual path
    except EngineError:
        if engine.image_exists(image):  # it is there: the engine failed otherwise
            raise
        how = ("build it (`ap-build image build`, or `docker build -t TAG .` in the repository) and pass "
               "--image TAG" if opts.image is None else f"build it or `docker pull {image}`")
        raise EngineError(f"image {image} is not in the engine", hint=f"{how}; the platform's registry "
                          f"image can be fetched with `docker pull {codegen.image(m, settings)}` where reachable"
                          ) from None
    user_problem = local.image_user_problem(str(inspected["Config"].get("User") or ""))
    return Checked(ident, settings, m, logical_date, conf, secrets, extra_env,
                   local.Masker(mask_values(secrets, extra_env)), version, engine, image, user_problem)


def plan_run(c: Checked, opts: RunOptions, key: str) -> tuple[localdag.RunPlan, Any]:
    """Compile as for the platform, build each task's pod, turn the pods into containers -> (plan, compiled DAG)."""
    major = int(c.airflow.split(".")[0])
    # the installed Airflow's line; no notifications: a local run never calls Slack or sends email
    quiet = c.manifest.model_copy(update={"notifications": model.Notifications()})
    source = codegen.render_dag(quiet, c.ident, dataclasses.replace(c.settings, airflow=min(major, 3)),
                                source=str(opts.manifest))
    specs, compiled = localdag.compiled_pods(source)
    info = c.engine.api.info()
    specs = [local.fit_to_engine(dataclasses.replace(s, image=c.image), info.get("NCPU"), info.get("MemTotal"))
             for s in specs]
    specs = local.select_tasks(specs, opts.task, opts.with_upstream)
    if c.user_problem and any(s.run_as_non_root for s in specs):
        raise CheckFailed(f"image {c.image} {c.user_problem}: the platform's pods (runAsNonRoot) refuse it",
                          hint="end the Dockerfile with USER 1000 (the runtime bases' CONTAINER_UID)")
    missing = sorted({v for s in specs for v in s.secret_env if v not in c.secrets})
    if missing:
        raise UsageError(f"no value for {', '.join(missing)}", hint="add them to the --secrets file")
    plan = localdag.RunPlan(
        key=key, dag_id=compiled.dag_id, schedule=_schedule(compiled), start_date=_start(compiled, c.manifest),
        params={k: compiled.params[k] for k in compiled.params}, specs=specs, secrets=c.secrets,
        engine_url=c.engine.host, api_version=c.engine.api.api_version, extra_env=c.extra_env,
        gpu=any(s.gpu for s in specs) and engine_has_gpu(c.engine), present_images=frozenset({c.image}))
    return plan, compiled


def run_workflow(opts: RunOptions) -> RunResult:
    """Check everything, then run the workflow (through the warm run server unless it is off or cannot
    start, else in this process); the live view and the containers' output go to stderr."""
    t0 = time.monotonic()
    c = preflight(opts)
    key = uuid.uuid4().hex
    from ap_build.workflow import runclient

    if opts.server and runclient.enabled():
        served = runclient.run_via_server(c, opts, key)
        if served is not None:
            view, outcome, log, sdir = served
            return dataclasses.replace(result_of(c, opts, view, outcome, t0, log), server=str(sdir),
                                       server_pid=outcome.server_pid)
    run_dir = Path(tempfile.mkdtemp(prefix="ap-build-run-"))
    log = run_dir / "airflow.log"
    with airflow_output_to(log) as stream:
        ui = LocalUI(Console(file=stream, stderr=True, highlight=False, soft_wrap=True, markup=False), c.mask)
        try:
            outcome = execute(c, opts, key, run_dir, ui)
        finally:
            ui.stop()
    assert ui.view is not None
    return result_of(c, opts, ui.view, outcome, t0, log)


@dataclasses.dataclass
class Outcome:
    """What Airflow says about the run."""

    dag_id: str
    run_id: str
    state: str
    states: dict[str, str]
    cold: bool
    server_pid: int | None = None  # set by the run server's child


class RunUI(Protocol):
    """Where a run reports: the view in this process, or a run server's client (runserver.RemoteUI)."""

    def cold(self, text: str) -> contextlib.AbstractContextManager[Any]: ...
    def plan(self, tasks: list[str]) -> localdag.Reporter: ...
    def note(self, text: str) -> None: ...
    def settle(self, states: dict[str, str]) -> None: ...


def execute(c: Checked, opts: RunOptions, key: str, run_dir: Path, ui: RunUI) -> Outcome:
    """Run the checked workflow in this process's Airflow on a copy of the cached metadata DB in `run_dir`
    (Airflow's output already goes to run_dir/airflow.log); containers removed afterwards unless --keep."""
    log = run_dir / "airflow.log"
    keep_dir = opts.keep
    try:
        localdag.configure_airflow(run_dir)
        text = f"setting up a metadata DB for Airflow {c.airflow} (first run only; later runs copy it)"
        cold = localdag.prepare_db(run_dir, c.airflow, lambda: ui.cold(text))
        plan, compiled = plan_run(c, opts, key)
        reporter = ui.plan([s.task_id for s in plan.specs])
        if any(s.gpu for s in plan.specs) and not plan.gpu:
            ui.note("warning: a task asks for a GPU and the engine has none: it runs on CPU")
        localdag.mask_in_airflow(mask_values(c.secrets, c.extra_env))
        dag = localdag.build_dag(plan, reporter)
        localdag.write_dag_file(run_dir, key)
        with stop_on_ctrl_c(c.engine, key) as interrupted:
            run_id, state, states = localdag.run_dag(dag, c.logical_date, c.conf)
        ui.settle(states)
        if interrupted.is_set():
            raise KeyboardInterrupt
        return Outcome(compiled.dag_id, run_id, state, states, cold)
    except KeyboardInterrupt:
        remove_containers(c.engine, key)
        keep_dir = False
        raise
    except ApBuildError:
        keep_dir = False
        raise
    except Exception as exc:  # Airflow failed to run the DAG: point at its log, never a traceback here
        keep_dir = True
        tail = [c.mask(ln) for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-1:]
        raise ApBuildError(f"Airflow could not run the workflow: {type(exc).__name__}: {c.mask(str(exc))[:300]}",
                           hint=f"Airflow's log: {log}" + (f" (last line: {tail[0][:200]})" if tail else "")) from exc
    finally:
        localdag.forget(key)
        if not opts.keep:
            remove_containers(c.engine, key)
        if not keep_dir:
            shutil.rmtree(run_dir, ignore_errors=True)


def result_of(c: Checked, opts: RunOptions, view: RunView, o: Outcome, t0: float, log: Path) -> RunResult:
    tasks = [TaskResult(t.task_id, t.state, None if t.duration is None else round(t.duration, 3), t.exit_code,
                        t.container) for t in view.tasks.values()]
    return RunResult(dag_id=o.dag_id, run_id=o.run_id, logical_date=c.logical_date.isoformat(), state=o.state,
                     image=c.image, airflow=c.airflow, cold_start=o.cold, seconds=round(time.monotonic() - t0, 3),
                     tasks=tasks, kept=[t.container for t in tasks if opts.keep and t.container],
                     log=str(log) if opts.keep else None)


def mask_values(secrets: dict[str, str], extra_env: dict[str, str]) -> list[str]:
    return [*secrets.values(), *(v for k, v in extra_env.items() if k != "AWS_CREDENTIAL_EXPIRATION")]


def _schedule(dag: Any) -> Any:
    """The compiled DAG's timetable (it sets data_interval_*); dataset/asset-triggered ones run as manual."""
    timetable = getattr(dag, "timetable", None)
    name = type(timetable).__name__
    return None if timetable is None or "Asset" in name or "Dataset" in name else timetable


def _start(dag: Any, m: Any) -> dt.datetime:
    start = (getattr(dag, "default_args", None) or {}).get("start_date")
    if isinstance(start, dt.datetime):
        return start
    d = m.dag.start_date
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)
