"""The client side of the warm run server (server.py): find or start the server for this Python, Airflow
and ap-build, hand it one checked run, and show the run's events in this process's view.

The server is keyed by the Python executable, the Airflow version and ap-build's version and sources, so an
upgrade (or an edit) never talks to a stale server. It lives in the user's cache directory (mode 0700, the
socket 0600) and exits after AP_BUILD_RUN_SERVER_IDLE seconds without a run (default 600).
AP_BUILD_RUN_SERVER=0 (or `workflow run --no-server`) runs in this process instead, as does any run whose
server cannot start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import importlib.metadata
import os
import signal
import stat
import subprocess
import sys
import time
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from ap_build import errors, names
from ap_build.workflow.run import localdag
from ap_build.workflow.run.execute import remove_containers
from ap_build.workflow.run.view import LocalUI, RunView

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


def private_dir(path: Path) -> bool:
    """Create `path` (0700) or check it is ours and private: anyone who can reach the socket can run code."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    return st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077 == 0


def connect(path: Path) -> Connection | None:
    """A connection to a live server, or None (no socket, or a stale one nobody listens on)."""
    try:
        return Client(str(path), family="AF_UNIX")
    except OSError:
        return None


def server_env() -> dict[str, str]:
    """The server's environment: this one without credentials (the runs get theirs in each request)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", names.SECRET_PREFIX))}


def start_server(sdir: Path, note: Any) -> Connection | None:
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
                                    start_new_session=True, close_fds=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            conn = connect(sock) if sock.exists() else None
            if conn is not None:
                return conn
            if proc.poll() is not None:  # it exited: another server holds its lock, or it failed
                conn = connect(sock)
                return conn
            time.sleep(0.1)
    return None


def run_via_server(c: Any, opts: Any, key: str) -> tuple[RunView, Any, Path, Path] | None:
    """Run through the server -> (the view, Airflow's outcome, Airflow's log, the server's directory); None
    when no server could be reached or started (the caller runs in this process)."""
    console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
    sdir = server_dir(c.airflow)
    if len(str(sdir / SOCKET)) > MAX_SOCKET_PATH or not private_dir(sdir):
        console.print(Text(f"warning: {sdir} is not private to this user (mode 0700) or its path is too long for "
                           "a socket: running in this process", style="yellow"))
        return None
    conn = start_server(sdir, lambda text: console.print(Text(text, style="dim")))
    if conn is None:
        console.print(Text(f"warning: the run server did not start (its log: {sdir / 'server.log'}); "
                           "running in this process", style="yellow"))
        return None
    with conn:
        request = {"cwd": os.getcwd(), "opts": opts, "checked": dataclasses.replace(c, engine=None),
                   "engine": (c.engine.host, c.engine.api.api_version), "key": key}
        try:
            conn.send(("run", request))
        except OSError:
            return None
        ui = LocalUI(console, c.mask)
        try:
            with forward_ctrl_c(conn):
                outcome, log = receive(conn, ui, sdir)
        except KeyboardInterrupt:
            remove_containers(c.engine, key)
            raise
        finally:
            ui.stop()
    assert ui.view is not None
    return ui.view, outcome, log, sdir


def receive(conn: Connection, ui: LocalUI, sdir: Path) -> tuple[Any, Path]:
    """Show the run's events until its outcome; its errors are raised here as they were raised there."""
    status: contextlib.AbstractContextManager[Any] | None = None
    while True:
        try:
            kind, *args = conn.recv()
        except (EOFError, OSError) as exc:
            raise errors.ApBuildError("the run server's worker for this run ended unexpectedly",
                                      hint=f"run again with --no-server; the server's log: {sdir / 'server.log'}"
                                      ) from exc
        if status is not None and kind != "cold":
            status.__exit__(None, None, None)
            status = None
        if kind == "cold":
            status = ui.cold(args[0])
            status.__enter__()
        elif kind == "plan":
            ui.plan(args[0])
        elif kind in ("note", "settle"):
            getattr(ui, kind)(*args)
        elif kind in ("started", "line", "error", "finished") and ui.view is not None:
            getattr(ui.view, kind)(*args)
        elif kind == "done":
            return args[0], Path(args[1])
        elif kind == "interrupted":
            raise KeyboardInterrupt
        elif kind == "failed":
            name, message, hint, code = args
            cls = getattr(errors, name, errors.ApBuildError)
            cls = cls if isinstance(cls, type) and issubclass(cls, errors.ApBuildError) else errors.ApBuildError
            raise cls(message, hint=hint, exit_code=code)


@contextlib.contextmanager
def forward_ctrl_c(conn: Connection) -> Any:
    """Ctrl-C: ask the run to stop (its containers are removed, no new task starts) and wait for it; a second
    Ctrl-C stops waiting (the caller removes the containers)."""
    asked = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal asked
        if asked:
            raise KeyboardInterrupt
        asked = True
        with contextlib.suppress(OSError):
            conn.send(("stop",))

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
