"""`ap-build workflow run`: run a workflow on this machine with real Airflow and real containers.

Everything that can stop the run is checked before any container starts (checks.py). Then the manifest
is compiled as for the platform, each task's pod is built and turned into a container (pods.py, localdag.py),
and Airflow's `dag.test()` runs the DAG on a throwaway metadata DB (a copy of one migrated once per
Airflow version): through the warm run server (client.py, server.py) or in this process (execute.py).
Airflow's own output goes to a log file; the view (view.py) shows task states and the containers' output.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console

from ap_build.workflow.run import client
from ap_build.workflow.run.checks import Checked, RunOptions, preflight
from ap_build.workflow.run.execute import Outcome, airflow_output_to, execute
from ap_build.workflow.run.view import LocalUI, RunView


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
    server: str | None = None  # the run server's directory (client.py); None: run in this process
    server_pid: int | None = None

    @property
    def ok(self) -> bool:
        return all(t.state == "success" for t in self.tasks)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, "ok": self.ok, **dataclasses.asdict(self)}


def run_workflow(opts: RunOptions) -> RunResult:
    """Check everything, then run the workflow (through the warm run server unless it is off or cannot
    start, else in this process); the live view and the containers' output go to stderr."""
    t0 = time.monotonic()
    c = preflight(opts)
    key = uuid.uuid4().hex
    if opts.server and client.enabled():
        served = client.run_via_server(c, opts, key)
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


def result_of(c: Checked, opts: RunOptions, view: RunView, o: Outcome, t0: float, log: Path) -> RunResult:
    tasks = [TaskResult(t.task_id, t.state, None if t.duration is None else round(t.duration, 3), t.exit_code,
                        t.container) for t in view.tasks.values()]
    return RunResult(dag_id=o.dag_id, run_id=o.run_id, logical_date=c.logical_date.isoformat(), state=o.state,
                     image=c.image, airflow=c.airflow, cold_start=o.cold, seconds=round(time.monotonic() - t0, 3),
                     tasks=tasks, kept=[t.container for t in tasks if opts.keep and t.container],
                     log=str(log) if opts.keep else None)
