"""What a person watches during `workflow run`: a live table of task states (on a terminal; state lines
otherwise), each container's output prefixed by its task, and the final table. Secret values are masked
in every line before it is printed."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

STYLES = {"waiting": "dim", "running": "yellow", "success": "green", "failed": "bold red",
          "upstream_failed": "red", "skipped": "dim", "stopped": "red"}
COLOURS = ("cyan", "magenta", "blue", "green", "yellow", "bright_cyan", "bright_magenta", "bright_blue")


@dataclass
class TaskState:
    task_id: str
    state: str = "waiting"
    container: str = ""
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.monotonic()) - self.started


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


class RunView:
    """Receives the tasks' events (the localdag.Reporter protocol) and shows them."""

    def __init__(self, tasks: list[str], mask: Callable[[str], str]) -> None:
        self.tasks = {t: TaskState(t) for t in tasks}
        self.mask = mask
        self.width = max((len(t) for t in tasks), default=4)
        self.colours = {t: COLOURS[i % len(COLOURS)] for i, t in enumerate(tasks)}
        self.console: Console | None = None
        self._live: Live | None = None
        self._lock = threading.Lock()

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, console: Console) -> None:
        self.console = console
        if console.is_terminal:
            # sys.stdout/stderr stay Airflow's (its log file): Live must not pull them onto the terminal
            self._live = Live(console=console, refresh_per_second=4, transient=True, get_renderable=self._table,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def note(self, message: str) -> None:
        if self.console is not None:
            self.console.print(Text(self.mask(message), style="dim"))

    # --- the Reporter protocol ----------------------------------------------------------------
    def started(self, task_id: str, container: str) -> None:
        with self._lock:
            st = self.tasks[task_id]
            st.state, st.container, st.started = "running", container, time.monotonic()
        self._state_line(st)

    def line(self, task_id: str, text: str) -> None:
        if self.console is None:
            return
        prefix = (f"{task_id:<{self.width}} | ", self.colours.get(task_id, "cyan"))  # only the prefix coloured
        self.console.print(Text.assemble(prefix, self.mask(text)), soft_wrap=True)  # masked again: cheap, and safe

    def error(self, task_id: str, text: str) -> None:
        """The task failed outside its program (the engine refused the container, ...)."""
        if self.console is not None:
            self.console.print(Text(f"{task_id}: error: {self.mask(text)}", style="red"), soft_wrap=True)

    def finished(self, task_id: str, exit_code: int | None, succeeded: bool) -> None:
        """`succeeded`: the operator returned (its container ran and exited 0); never inferred from an exit
        code, which an engine reports as 0 for a container it never started."""
        with self._lock:
            st = self.tasks[task_id]
            st.ended, st.exit_code = time.monotonic(), exit_code
            st.state = "success" if succeeded and exit_code == 0 else "failed"
        self._state_line(st)

    def settle(self, states: dict[str, str]) -> None:
        """Airflow's final word on each task's state (e.g. upstream_failed for tasks never started)."""
        with self._lock:
            for task_id, state in states.items():
                if task_id in self.tasks:
                    self.tasks[task_id].state = state
        for task_id, state in states.items():
            if state in ("upstream_failed", "skipped") and task_id in self.tasks:
                self._state_line(self.tasks[task_id])

    # --- rendering ----------------------------------------------------------------------------
    def _state_line(self, st: TaskState) -> None:
        if self.console is None or self._live is not None:
            return
        extra = ""
        if st.state in ("success", "failed"):
            code = "its container did not run" if st.exit_code is None else f"exit {st.exit_code}"
            extra = f" ({code}, {_seconds(st.duration)})"
        self.console.print(Text(f"{st.task_id}: {st.state}{extra}", style=STYLES.get(st.state, "")))

    def _table(self) -> Table:
        table = Table(show_edge=False, box=None, header_style="bold")
        for column in ("task", "state", "duration", "exit code"):
            table.add_column(column)
        for st in self.tasks.values():
            table.add_row(st.task_id, Text(st.state, style=STYLES.get(st.state, "")), _seconds(st.duration),
                          "-" if st.exit_code is None else str(st.exit_code))
        return table


class LocalUI:
    """The view in the process that runs Airflow (execute.RunUI; without the run server)."""

    def __init__(self, console: Console, mask: Callable[[str], str]) -> None:
        self.console, self.mask = console, mask
        self.view: RunView | None = None

    def cold(self, text: str) -> contextlib.AbstractContextManager[Any]:
        if self.console.is_terminal:
            return self.console.status(text)
        self.console.print(Text(text, style="dim"))
        return contextlib.nullcontext()

    def plan(self, tasks: list[str]) -> RunView:
        self.view = RunView(tasks, self.mask)
        self.view.start(self.console)
        return self.view

    def note(self, text: str) -> None:
        if self.view is not None:
            self.view.note(text)
        else:  # before the tasks are known (the metadata DB's set-up)
            self.console.print(Text(self.mask(text), style="dim"))

    def settle(self, states: dict[str, str]) -> None:
        if self.view is not None:
            self.view.settle(states)
            self.view.stop()

    def stop(self) -> None:
        if self.view is not None:
            self.view.stop()


@dataclass
class TaskResult:
    """A task's line in the result: its final state, how long its container ran, the program's exit code."""

    task: str
    state: str
    duration_s: float | None
    exit_code: int | None
    container: str


def task_results(view: RunView) -> list[TaskResult]:
    return [TaskResult(t.task_id, t.state, None if t.duration is None else round(t.duration, 3), t.exit_code,
                       t.container) for t in view.tasks.values()]


def summary_table(tasks: list[TaskResult]) -> Table:
    """The final table: task, state, duration, container exit code."""
    table = Table(header_style="bold", show_edge=False)
    for column in ("task", "state", "duration", "exit code"):
        table.add_column(column)
    for t in tasks:
        table.add_row(t.task, Text(t.state, style=STYLES.get(t.state, "")),
                      "-" if t.duration_s is None else f"{t.duration_s:.1f} s",
                      "-" if t.exit_code is None else str(t.exit_code))
    return table
