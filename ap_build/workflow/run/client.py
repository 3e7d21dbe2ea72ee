"""The client side of the warm run server (server.py): find or start the server for this Python, Airflow
and ap-build, hand it one checked run (a protocol.Job), and show the run's events in this process's view.

The server is keyed by the Python executable, the Airflow version and ap-build's version and sources, so an
upgrade (or an edit) never talks to a stale server. It lives in the user's cache directory (mode 0700, the
socket 0600) and exits after AP_BUILD_RUN_SERVER_IDLE seconds without a run (default 600).
AP_BUILD_RUN_SERVER=0 (or `workflow run --no-server`) runs in this process instead, as does any run whose
server folder is unusable (not a folder, not private, a path too long for a socket) or whose server cannot
start: each says why in one warning line.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from ap_build import errors, names
from ap_build.workflow.run import localdag, protocol
from ap_build.workflow.run.execute import remove_containers
from ap_build.workflow.run.protocol import Job, Outcome, ProtocolError
from ap_build.workflow.run.view import LocalUI, RunView

if TYPE_CHECKING:
    from ap_build.engine import Engine

OFF_VALUES = {"0", "off", "false", "no"}
START_TIMEOUT_S = 180
SOCKET = "s"
MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to ~108 bytes


def enabled() -> bool:
    return os.environ.get("AP_BUILD_RUN_SERVER", "1").strip().lower() not in OFF_VALUES


def server_key(airflow: str) -> str:
    """Python executable + Airflow version + ap-build's version and sources (size and mtime of each file)."""
    import ap_build

    root = Path(ap_build.__file__).parent
    h = hashlib.sha256(f"{sys.executable}\0{airflow}\0{importlib.metadata.version('ap-build')}".encode())
    for path in sorted(root.rglob("*.py")):
        st = path.stat()
        h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:16]


def server_dir(airflow: str) -> Path:
    return localdag.cache_dir(airflow).parent / f"run-server-{server_key(airflow)}"


def unusable(path: Path) -> str | None:
    """Why `path` cannot hold a run server (None: it can): it is created 0700, or must be a folder of this
    user's that no one else can enter, since whoever reaches the socket could hand it a run."""
    if not hasattr(socket, "SO_PEERCRED"):  # Linux's: without it no side could tell who is at the other end
        return "this system cannot tell a socket's peer (SO_PEERCRED)"
    if len(str(path / SOCKET)) > MAX_SOCKET_PATH:
        return "its path is too long for a socket"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError as exc:
        return f"it cannot be made ({exc.strerror or type(exc).__name__})"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a folder"
    if st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
        return "it is not private to this user (mode 0700)"
    return None


def private_dir(path: Path) -> bool:
    return unusable(path) is None


def connect(path: Path) -> socket.socket | None:
    """A connection to a live server of this user's, or None (no socket, or a stale one nobody listens on)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    if protocol.peer_credentials(sock)[1] != os.getuid():  # never hand a run (and its secrets) to another user
        sock.close()
        return None
    return sock


def server_env() -> dict[str, str]:
    """The server's environment: this one without credentials (the runs get theirs in each request)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", names.SECRET_PREFIX))}


def start_server(sdir: Path, note: Callable[[str], None]) -> socket.socket | None:
    """Connect to the server, starting it (once, under a lock) when none answers; None when it cannot start."""
    sock = sdir / SOCKET
    conn = connect(sock)
    if conn is not None:
        return conn
    with open(sdir / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        conn = connect(sock)  # another client started it meanwhile
        if conn is not None:
            return conn
        note("starting a warm Airflow for later runs (once; it exits after an idle time)")
        with open(sdir / "server.log", "a") as log:
            proc = subprocess.Popen([sys.executable, "-m", "ap_build.workflow.run.server", str(sdir)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=server_env(),
                                    cwd=sdir, start_new_session=True, close_fds=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            conn = connect(sock) if sock.exists() else None
            if conn is not None:
                return conn
            if proc.poll() is not None:  # it exited: another server holds its lock, or it failed
                return connect(sock)
            time.sleep(0.1)
    return None


def run_via_server(job: Job, engine: Engine) -> tuple[RunView, Outcome, Path, Path] | None:
    """Run through the server -> (the view, Airflow's outcome, Airflow's log, the server's directory); None
    when no server could be reached or started (the caller runs in this process)."""
    console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
    sdir = server_dir(job.airflow)
    why = unusable(sdir)
    if why is not None:
        console.print(Text(f"warning: the run server's folder {sdir} is unusable ({why}): running in this "
                           "process", style="yellow"))
        return None
    conn = start_server(sdir, lambda text: console.print(Text(text, style="dim")))
    if conn is None:
        console.print(Text(f"warning: the run server did not start (its log: {sdir / 'server.log'}); "
                           "running in this process", style="yellow"))
        return None
    with conn:
        try:
            protocol.send(conn, protocol.RunRequest(job=job))
        except OSError:
            return None
        ui = LocalUI(console, job.masker())
        try:
            with forward_ctrl_c(conn):
                outcome, log = receive(conn, ui, sdir)
        except KeyboardInterrupt:
            remove_containers(engine, job.key)
            raise
        finally:
            ui.stop()
    assert ui.view is not None
    return ui.view, outcome, log, sdir


def receive(conn: socket.socket, ui: LocalUI, sdir: Path) -> tuple[Outcome, Path]:
    """Show the run's events until its outcome; its errors are raised here as they were raised there."""
    status: contextlib.AbstractContextManager[Any] | None = None
    while True:
        try:
            event = protocol.receive_event(conn)
        except (ProtocolError, OSError) as exc:
            raise errors.ApBuildError(f"the run server's worker for this run ended unexpectedly ({exc})",
                                      hint=f"run again with --no-server; the server's log: {sdir / 'server.log'}"
                                      ) from None
        if status is not None and not isinstance(event, protocol.Cold):
            status.__exit__(None, None, None)
            status = None
        match event:
            case protocol.Cold(text=text):
                status = ui.cold(text)
                status.__enter__()
            case protocol.Plan(tasks=tasks):
                ui.plan(tasks)
            case protocol.Note(text=text):
                ui.note(text)
            case protocol.Settle(states=states):
                ui.settle(states)
            case protocol.Started(task=task, container=container) if ui.view is not None:
                ui.view.started(task, container)
            case protocol.Line(task=task, text=text) if ui.view is not None:
                ui.view.line(task, text)
            case protocol.TaskError(task=task, text=text) if ui.view is not None:
                ui.view.error(task, text)
            case protocol.Finished(task=task, exit_code=code, succeeded=ok) if ui.view is not None:
                ui.view.finished(task, code, ok)
            case protocol.Done(outcome=outcome, log=log):
                return outcome, Path(log)
            case protocol.Interrupted():
                raise KeyboardInterrupt
            case protocol.Failed(error=name, message=message, hint=hint, exit_code=code):
                raise error_class(name)(message, hint=hint, exit_code=code)


def error_class(name: str) -> type[errors.ApBuildError]:
    """The error class the child raised, by name: only ap-build's own."""
    cls = getattr(errors, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, errors.ApBuildError) else errors.ApBuildError


@contextlib.contextmanager
def forward_ctrl_c(conn: socket.socket) -> Iterator[None]:
    """Ctrl-C: ask the run to stop (its containers are removed, no new task starts) and wait for it; a second
    Ctrl-C stops waiting (the caller removes the containers)."""
    asked = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal asked
        if asked:
            raise KeyboardInterrupt
        asked = True
        with contextlib.suppress(OSError):
            protocol.send(conn, protocol.Stop())

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
