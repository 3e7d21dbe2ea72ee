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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from ap_build.workflow.run import client
from ap_build.workflow.run.checks import RunOptions, preflight
from ap_build.workflow.run.execute import airflow_output_to, execute
from ap_build.workflow.run.protocol import Job, Outcome
from ap_build.workflow.run.view import LocalUI, RunView, TaskResult, task_results

if TYPE_CHECKING:
    from ap_build.engine import Engine


@dataclasses.dataclass
class RunResult:
    """What `workflow run --json` prints (schema_version 1)."""

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
    platform: str = ""  # the image's platform, `linux/arm64 (emulated)` where it is not this machine's

    @property
    def ok(self) -> bool:
        return all(t.state == "success" for t in self.tasks)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, "ok": self.ok, **dataclasses.asdict(self)}


def run_workflow(opts: RunOptions) -> RunResult:
    """Check everything, then run the workflow (through the warm run server unless it is off or cannot
    start, else in this process); the live view and the containers' output go to stderr."""
    t0 = time.monotonic()
    checked = preflight(opts)
    job = checked.job
    served = client.run_via_server(job, checked.engine) if opts.server and client.enabled() else None
    if served is not None:
        view, outcome, log, sdir = served
        return result_of(job, view, outcome, t0, log, server=str(sdir), platform=checked.platform)
    view, outcome, log = run_here(job, checked.engine)
    return result_of(job, view, outcome, t0, log, platform=checked.platform)


def run_here(job: Job, engine: Engine) -> tuple[RunView, Outcome, Path]:
    """Run in this process: Airflow imported here, its output to the run folder's airflow.log."""
    run_dir = Path(tempfile.mkdtemp(prefix="ap-build-run-"))
    log = run_dir / "airflow.log"
    with airflow_output_to(log) as stream:
        ui = LocalUI(Console(file=stream, stderr=True, highlight=False, soft_wrap=True, markup=False), job.masker())
        try:
            outcome = execute(job, engine, run_dir, ui)
        finally:
            ui.stop()
    assert ui.view is not None
    return ui.view, outcome, log


def result_of(job: Job, view: RunView, o: Outcome, t0: float, log: Path, server: str | None = None,
              platform: str = "") -> RunResult:
    tasks = task_results(view)
    return RunResult(dag_id=o.dag_id, run_id=o.run_id, logical_date=job.logical_date.isoformat(), state=o.state,
                     image=job.image, airflow=job.airflow, cold_start=o.cold, seconds=round(time.monotonic() - t0, 3),
                     tasks=tasks, kept=[t.container for t in tasks if job.keep and t.container],
                     log=str(log) if job.keep else None, server=server, server_pid=o.server_pid, platform=platform)
