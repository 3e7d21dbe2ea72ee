"""The warm run server of `workflow run`: a background process that has imported and configured Airflow, its
Kubernetes and Docker providers and (Airflow 3) the in-process execution API once, and forks a child per run.

    python -m ap_build.workflow.run.server DIR     (started by client.py; DIR is private, 0700)

The server never reads a request: it accepts a connection on DIR/s, refuses a peer of another uid
(SO_PEERCRED), and forks. The child reads one protocol.RunRequest (typed, versioned JSON: anything else is
refused and runs nothing), sends its output to its own run folder's airflow.log (never the server's log),
runs the checked run (secrets in memory only) exactly as `workflow run --no-server` does (execute.execute)
on a fresh copy of the cached metadata DB with a new database engine, and streams the view's events back.
A crash or a hung run harms only its child. The client closing the connection (Ctrl-C, kill) stops the
run and removes its containers.
Fork safety: the server starts no thread and opens no database or engine connection before it forks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

import docker

from ap_build.engine import Engine
from ap_build.errors import ApBuildError
from ap_build.workflow.run import client, localdag, protocol
from ap_build.workflow.run.execute import execute
from ap_build.workflow.run.mask import Masker
from ap_build.workflow.run.protocol import Job, ProtocolError

IDLE_S = 600.0
REQUEST_TIMEOUT_S = 30.0  # a connection that sends no request in time is dropped


def log(message: str) -> None:
    """The server's log: its own life only (starts, runs' pids and exit statuses), never a run's data."""
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ} [{os.getpid()}] {message}", flush=True)


class RemoteUI:
    """execute.RunUI and localdag.Reporter for a child: every event goes to the client as a message."""

    def __init__(self, conn: socket.socket, mask: Masker) -> None:
        self.conn, self.mask = conn, mask
        self._lock = threading.Lock()

    def send(self, message: protocol.ToClient) -> None:
        with self._lock:
            protocol.send(self.conn, message)

    def cold(self, text: str) -> contextlib.AbstractContextManager[None]:
        self.send(protocol.Cold(text=text))
        return contextlib.nullcontext()

    def plan(self, tasks: list[str]) -> RemoteUI:
        self.send(protocol.Plan(tasks=tasks))
        return self

    def note(self, text: str) -> None:
        self.send(protocol.Note(text=self.mask(text)))

    def settle(self, states: dict[str, str]) -> None:
        self.send(protocol.Settle(states=states))

    def started(self, task_id: str, container: str) -> None:
        self.send(protocol.Started(task=task_id, container=container))

    def line(self, task_id: str, text: str) -> None:
        self.send(protocol.Line(task=task_id, text=self.mask(text)))

    def error(self, task_id: str, text: str) -> None:
        self.send(protocol.TaskError(task=task_id, text=self.mask(text)))

    def finished(self, task_id: str, exit_code: int | None, succeeded: bool) -> None:
        self.send(protocol.Finished(task=task_id, exit_code=exit_code, succeeded=succeeded))


def watch_client(conn: socket.socket, done: threading.Event) -> None:
    """The client asks to stop (Ctrl-C), goes away, or sends what is not a Stop: interrupt the run as Ctrl-C
    does in-process."""
    while not done.is_set():
        try:
            message = protocol.receive_request(conn)
        except (ProtocolError, OSError):
            message = None
        if done.is_set():
            return
        os.kill(os.getpid(), signal.SIGINT)
        if not isinstance(message, protocol.Stop):
            return


def read_job(conn: socket.socket) -> Job:
    """The child's first act: one RunRequest, validated; anything else is refused here, before anything of
    a run exists (logged in the server's log, answered with a Failed message)."""
    conn.settimeout(REQUEST_TIMEOUT_S)
    try:
        request = protocol.receive_request(conn)
        if not isinstance(request, protocol.RunRequest):
            raise ProtocolError(f"expected a run request, got {request.type!r}")
    except (ProtocolError, OSError) as exc:
        why = exc.message if isinstance(exc, ProtocolError) else f"{type(exc).__name__}: {exc}"
        log(f"refused a connection: {why}")
        with contextlib.suppress(Exception):
            protocol.send(conn, protocol.Failed(error="ProtocolError", message=f"the run server refused the "
                                                f"request: {why}", hint="run with --no-server", exit_code=2))
            conn.settimeout(0.5)  # read (a little of) what is left, so closing does not reset the answer
            for _ in range(16):
                if not conn.recv(65536):
                    break
        raise SystemExit(2) from None
    conn.settimeout(None)
    return request.job


def serve_run(conn: socket.socket) -> None:
    """In the forked child: one run, then exit (never returns)."""
    server_pid = os.getppid()  # now: the server may exit (SIGTERM) while this run goes on
    for sig in (signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        job = read_job(conn)
    except SystemExit:
        os._exit(2)
    run_dir = Path(tempfile.mkdtemp(prefix="ap-build-run-"))
    os.chdir(run_dir)
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
    mask = job.masker()
    ui = RemoteUI(conn, mask)
    try:
        engine = Engine(docker.DockerClient(base_url=job.engine_host, version=job.api_version, timeout=600),
                        job.engine_host)  # known: no version request, no ping
        threading.Thread(target=watch_client, args=(conn, done), daemon=True).start()
        outcome = execute(job, engine, run_dir, ui)
        done.set()
        ui.send(protocol.Done(outcome=outcome.model_copy(update={"server_pid": server_pid}), log=str(airflow_log)))
    except KeyboardInterrupt:
        done.set()
        with contextlib.suppress(Exception):
            ui.send(protocol.Interrupted())
    except ApBuildError as exc:
        done.set()
        with contextlib.suppress(Exception):
            ui.send(protocol.Failed(error=type(exc).__name__, message=mask(exc.message),
                                    hint=None if exc.hint is None else mask(exc.hint), exit_code=exc.exit_code))
    except BaseException as exc:  # whatever it was, the client gets one line
        done.set()
        code = 1
        with contextlib.suppress(Exception):
            ui.send(protocol.Failed(error="ApBuildError", message=f"the run failed: {type(exc).__name__}: "
                                    f"{mask(str(exc))[:300]}", hint=f"its log: {airflow_log}", exit_code=2))
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def hold_lock(sdir: Path) -> IO[str] | None:
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
        peer_pid, peer_uid = protocol.peer_credentials(conn)
        if peer_uid != os.getuid():  # the socket is 0600 in a 0700 folder: this is the second lock
            log(f"refused a connection from uid {peer_uid} (pid {peer_pid}): only uid {os.getuid()} may run")
            conn.close()
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
    why = client.unusable(sdir)
    if why is not None:
        log(f"{sdir}: {why}: not serving")
        return 2
    return serve(sdir, idle_seconds(os.environ.get("AP_BUILD_RUN_SERVER_IDLE")))


def idle_seconds(text: str | None) -> float:
    """AP_BUILD_RUN_SERVER_IDLE: how long the server waits for its next run, 1 s to a day; anything else
    (not a number, nan, 1e999) is the default, IDLE_S (pure)."""
    try:
        value = float(text) if text else IDLE_S
    except ValueError:
        return IDLE_S
    return value if 1 <= value <= 86_400 else IDLE_S


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
