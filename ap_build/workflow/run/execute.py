"""The Airflow side of one run, in this process or a run server's child: the checked run (a Job) planned
into containers, run with `dag.test()`, and its containers removed (also on Ctrl-C)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from ap_build.errors import ApBuildError, CheckFailed, UsageError
from ap_build.workflow.run import localdag, pods
from ap_build.workflow.run.protocol import Job, Outcome

if TYPE_CHECKING:
    from ap_build.engine import Engine


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


def remove_containers(engine: Engine, key: str) -> None:
    """Stop and remove every container of this run (also after Ctrl-C)."""
    engine.remove_containers(f"{pods.RUN_LABEL}={key}")


@contextlib.contextmanager
def stop_on_ctrl_c(engine: Engine, key: str) -> Iterator[threading.Event]:
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


def engine_has_gpu(engine: Engine) -> bool:
    """Docker's NVIDIA runtime, or a CDI spec for NVIDIA devices (Podman)."""
    if "nvidia" in (engine.api.info().get("Runtimes") or {}):
        return True
    return any(Path(p, "nvidia.yaml").exists() for p in ("/etc/cdi", "/var/run/cdi"))


def plan_run(job: Job, engine: Engine) -> tuple[localdag.RunPlan, Any]:
    """Build each task's pod from the compiled DAG file and turn the pods into containers -> (plan, the
    compiled DAG)."""
    specs, compiled = localdag.compiled_pods(job.source)
    info = engine.api.info()
    specs = [pods.fit_to_engine(dataclasses.replace(s, image=job.image), info.get("NCPU"), info.get("MemTotal"))
             for s in specs]
    specs = pods.select_tasks(specs, job.task, job.with_upstream)
    if job.user_problem and any(s.run_as_non_root for s in specs):
        raise CheckFailed(f"image {job.image} {job.user_problem}: the platform's pods (runAsNonRoot) refuse it",
                          hint="end the Dockerfile with USER 1000 (the runtime bases' CONTAINER_UID)")
    missing = sorted({v for s in specs for v in s.secret_env if v not in job.secrets})
    if missing:
        raise UsageError(f"no value for {', '.join(missing)}", hint="add them to the --secrets file")
    plan = localdag.RunPlan(
        key=job.key, dag_id=compiled.dag_id, schedule=_schedule(compiled), start_date=_start(compiled, job.start_date),
        params={k: compiled.params[k] for k in compiled.params}, specs=specs, secrets=job.secrets,
        engine_url=job.engine_host, api_version=job.api_version, extra_env=job.extra_env,
        gpu=any(s.gpu for s in specs) and engine_has_gpu(engine), present_images=frozenset({job.image}))
    return plan, compiled


class RunUI(Protocol):
    """Where a run reports: the view in this process, or a run server's client (server.RemoteUI)."""

    def cold(self, text: str) -> contextlib.AbstractContextManager[Any]: ...
    def plan(self, tasks: list[str]) -> localdag.Reporter: ...
    def note(self, text: str) -> None: ...
    def settle(self, states: dict[str, str]) -> None: ...


def execute(job: Job, engine: Engine, run_dir: Path, ui: RunUI) -> Outcome:
    """Run the checked workflow in this process's Airflow on a copy of the cached metadata DB in `run_dir`
    (Airflow's output already goes to run_dir/airflow.log); containers removed afterwards unless --keep."""
    log = run_dir / "airflow.log"
    keep_dir = job.keep
    mask = job.masker()
    try:
        localdag.configure_airflow(run_dir)
        text = f"setting up a metadata DB for Airflow {job.airflow} (first run only; later runs copy it)"
        cold, unusable = localdag.prepare_db(run_dir, job.airflow, lambda: ui.cold(text))
        if unusable:
            ui.note(f"warning: the metadata DB cannot be cached ({unusable}): this run migrates its own")
        plan, compiled = plan_run(job, engine)
        reporter = ui.plan([s.task_id for s in plan.specs])
        if any(s.gpu for s in plan.specs) and not plan.gpu:
            ui.note("warning: a task asks for a GPU and the engine has none: it runs on CPU")
        localdag.mask_in_airflow(mask.forms)
        dag = localdag.build_dag(plan, reporter)
        localdag.write_dag_file(run_dir, job.key)
        with stop_on_ctrl_c(engine, job.key) as interrupted:
            run_id, state, states = localdag.run_dag(dag, job.logical_date, job.conf)
        ui.settle(states)
        if interrupted.is_set():
            raise KeyboardInterrupt
        return Outcome(dag_id=compiled.dag_id, run_id=run_id, state=state, states=states, cold=cold)
    except KeyboardInterrupt:
        remove_containers(engine, job.key)
        keep_dir = False
        raise
    except ApBuildError:
        keep_dir = False
        raise
    except Exception as exc:  # Airflow failed to run the DAG: point at its log, never a traceback here
        keep_dir = True
        tail = [mask(ln) for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-1:]
        raise ApBuildError(f"Airflow could not run the workflow: {type(exc).__name__}: {mask(str(exc))[:300]}",
                           hint=f"Airflow's log: {log}" + (f" (last line: {tail[0][:200]})" if tail else "")) from exc
    finally:
        localdag.forget(job.key)
        if not job.keep:
            remove_containers(engine, job.key)
        if not keep_dir:
            shutil.rmtree(run_dir, ignore_errors=True)


def _schedule(dag: Any) -> Any:
    """The compiled DAG's timetable (it sets data_interval_*); dataset/asset-triggered ones run as manual."""
    timetable = getattr(dag, "timetable", None)
    name = type(timetable).__name__
    return None if timetable is None or "Asset" in name or "Dataset" in name else timetable


def _start(dag: Any, fallback: dt.date) -> dt.datetime:
    start = (getattr(dag, "default_args", None) or {}).get("start_date")
    if isinstance(start, dt.datetime):
        return start
    return dt.datetime(fallback.year, fallback.month, fallback.day, tzinfo=dt.UTC)
