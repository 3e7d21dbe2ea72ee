"""The warm run server of `workflow run`: a background process that has imported and configured Airflow, its
Kubernetes and Docker providers and (Airflow 3) the in-process execution API once, and forks a child per run.

    python -m ap_build.workflow.run.server DIR     (started by client.py; DIR is private, 0700)

The server never reads a request: it accepts a connection on DIR/s and forks. The child sends its output to
its own run folder's airflow.log (never the server's log), receives the checked run (secrets included, in
memory only), runs it exactly as `workflow run --no-server` does (execute.execute) on a fresh copy of the cached
metadata DB with a new database engine, and streams the view's events back. A crash or a hung run harms
only its child. The client closing the connection (Ctrl-C, kill) stops the run and removes its containers.
Fork safety: the server starts no thread and opens no database or engine connection before it forks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import docker

from ap_build.engine import Engine
from ap_build.errors import ApBuildError
from ap_build.workflow.run import client, localdag
from ap_build.workflow.run.execute import execute

IDLE_S = 600.0


def log(message: str) -> None:
    """The server's log: its own life only (starts, runs' pids and exit statuses), never a run's data."""
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ} [{os.getpid()}] {message}", flush=True)


class RemoteUI:
    """execute.RunUI and localdag.Reporter for a child: every event goes to the client as a message."""

    def __init__(self, conn: Connection, mask: Any) -> None:
        self.conn, self.mask = conn, mask
        self._lock = threading.Lock()

    def send(self, *message: Any) -> None:
        with self._lock:
            self.conn.send(message)

    def cold(self, text: str) -> contextlib.AbstractContextManager[Any]:
        self.send("cold", text)
        return contextlib.nullcontext()

    def plan(self, tasks: list[str]) -> RemoteUI:
        self.send("plan", tasks)
        return self

    def note(self, text: str) -> None:
        self.send("note", text)

    def settle(self, states: dict[str, str]) -> None:
        self.send("settle", states)

    def started(self, task_id: str, container: str) -> None:
        self.send("started", task_id, container)

    def line(self, task_id: str, text: str) -> None:
        self.send("line", task_id, self.mask(text))

    def error(self, task_id: str, text: str) -> None:
        self.send("error", task_id, self.mask(text))

    def finished(self, task_id: str, exit_code: int | None) -> None:
        self.send("finished", task_id, exit_code)


def watch_client(conn: Connection, done: threading.Event) -> None:
    """The client asks to stop (Ctrl-C) or goes away: interrupt the run as Ctrl-C does in-process."""
    while not done.is_set():
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = ("gone",)
        if done.is_set():
            return
        if message[0] in ("stop", "gone"):
            os.kill(os.getpid(), signal.SIGINT)
        if message[0] == "gone":
            return


def serve_run(sock: socket.socket) -> None:
    """In the forked child: one run, then exit (never returns)."""
    server_pid = os.getppid()  # now: the server may exit (SIGTERM) while this run goes on
    for sig in (signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    run_dir = Path(tempfile.mkdtemp(prefix="ap-build-run-"))
    airflow_log = run_dir / "airflow.log"
    fd = os.open(airflow_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)  # from here on nothing of this run can reach the server's log
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)
    code = 0
    done = threading.Event()
    conn = Connection(sock.detach())
    mask: Any = str
    try:
        _, request = conn.recv()  # ("run", request)
        os.chdir(request["cwd"])
        checked = request["checked"]
        mask = checked.mask
        host, api_version = request["engine"]  # known: no version request, no ping
        checked.engine = Engine(docker.DockerClient(base_url=host, version=api_version, timeout=600), host)
        ui = RemoteUI(conn, mask)
        threading.Thread(target=watch_client, args=(conn, done), daemon=True).start()
        outcome = execute(checked, request["opts"], request["key"], run_dir, ui)
        done.set()
        ui.send("done", dataclasses.replace(outcome, server_pid=server_pid), str(airflow_log))
    except KeyboardInterrupt:
        done.set()
        with contextlib.suppress(Exception):
            conn.send(("interrupted",))
    except ApBuildError as exc:
        done.set()
        with contextlib.suppress(Exception):
            conn.send(("failed", type(exc).__name__, exc.message, exc.hint, exc.exit_code))
    except BaseException as exc:  # whatever it was, the client gets one line
        done.set()
        code = 1
        with contextlib.suppress(Exception):
            conn.send(("failed", "ApBuildError", f"the run failed: {type(exc).__name__}: {mask(str(exc))[:300]}",
                       f"its log: {airflow_log}", 2))
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def hold_lock(sdir: Path) -> Any:
    """One server per directory: the lock is held for the server's life (a new server waits a little for an
    old one that is exiting)."""
    fh = open(sdir / "server.lock", "w")  # noqa: SIM115 - held until the process exits
    deadline = time.monotonic() + 5
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fh
        except OSError:
            if time.monotonic() > deadline:
                fh.close()
                return None
            time.sleep(0.1)


def serve(sdir: Path, idle_s: float) -> int:
    lock = hold_lock(sdir)
    if lock is None:
        log("another server holds this directory: exiting")
        return 0
    started = time.monotonic()
    localdag.warm_up(sdir / "warm")
    log(f"warm in {time.monotonic() - started:.1f} s (Airflow {localdag.airflow_version()}, {sys.executable})")
    path = sdir / client.SOCKET
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a dead server's
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    listener.listen(16)
    listener.settimeout(1.0)
    inode = path.stat().st_ino
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    children: set[int] = set()
    last = time.monotonic()
    log(f"listening on {path}")
    while not stopping.is_set():
        for pid in list(children):
            with contextlib.suppress(ChildProcessError):
                done, status, usage = os.wait4(pid, os.WNOHANG)
                if done:
                    children.discard(pid)
                    log(f"run {pid} ended (exit {os.waitstatus_to_exitcode(status)}, "
                        f"cpu {usage.ru_utime + usage.ru_stime:.2f} s)")
        if children:
            last = time.monotonic()
        elif time.monotonic() - last > idle_s:
            log(f"idle for {idle_s:.0f} s: exiting")
            break
        try:
            if path.stat().st_ino != inode:
                log("the socket was replaced: exiting")
                break
        except FileNotFoundError:
            log("the socket was removed: exiting")
            break
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        if threading.active_count() != 1:
            log(f"warning: {threading.active_count()} threads at fork")
        pid = os.fork()
        if pid == 0:
            listener.close()
            lock.close()  # the server's lock must not outlive the server in a child still running
            serve_run(conn)
        conn.close()
        children.add(pid)
        last = time.monotonic()
        log(f"run {pid} started")
    if stopping.is_set():
        log("stopped (SIGTERM)")
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_ino == inode:
            path.unlink()
    listener.close()
    return 0


def main(argv: list[str]) -> int:
    sdir = Path(argv[0])
    if not client.private_dir(sdir):
        log(f"{sdir} is not private to this user: not serving")
        return 2
    idle = float(os.environ.get("AP_BUILD_RUN_SERVER_IDLE") or IDLE_S)
    return serve(sdir, idle)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
