"""`workflow run`'s warm run server (run/server.py, run/client.py): reused between runs, recovered from a dead
server's socket, a killed client's run stopped and its containers removed, secrets in no file of the server,
and its directory private. Real engine, real Airflow, real server processes."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from ap_build.engine import Engine
from ap_build.workflow.run import client as runclient
from workflow.run.test_run import SECRET, image, leftovers, run, start_slow_run, write_tree  # noqa: F401 (fixture)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is not alive
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


def served(wf: Path, image_ref: str, secrets: Path, *args: str) -> dict:
    r = run(str(wf), "--image", image_ref, "--secrets", str(secrets), "--json", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert SECRET not in r.stdout + r.stderr
    return json.loads(r.stdout)


def server_files_text(sdir: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sdir.rglob("*") if p.is_file())


@pytest.mark.e2e
@pytest.mark.xdist_group("engine")
def test_a_second_run_reuses_the_server_and_a_dead_servers_socket_is_recovered(
        image: str, engine: Engine, tmp_path: Path):  # noqa: F811
    wf, secrets, _ = write_tree(tmp_path)
    first = served(wf, image, secrets, "--task", "extract")
    second = served(wf, image, secrets)
    pid, sdir = first["server_pid"], Path(first["server"])
    assert pid and second["server_pid"] == pid and second["server"] == str(sdir)  # the same warm process
    assert [t["state"] for t in second["tasks"]] == ["success"] * 3
    assert stat.S_IMODE(sdir.stat().st_mode) == 0o700 and stat.S_IMODE((sdir / "s").stat().st_mode) == 0o600
    log = (sdir / "server.log").read_text()
    assert log.count(f"[{pid}] run ") >= 2 and log.count(" started") >= 2  # each run a child of its own
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(pid) and (sdir / "s").exists()  # a dead server's socket is left behind
    third = served(wf, image, secrets)
    assert third["server_pid"] not in (None, pid) and alive(third["server_pid"])
    assert (sdir / "server.log").read_text().count("] warm in ") >= 2
    assert SECRET not in server_files_text(sdir)  # the secret reached no file of the server's
    assert leftovers(engine, image) == []


@pytest.mark.e2e
@pytest.mark.xdist_group("engine")
def test_killing_the_client_stops_its_run_and_removes_the_containers_the_server_lives_on(
        image: str, engine: Engine, tmp_path: Path):  # noqa: F811
    wf, secrets, _ = write_tree(tmp_path / "quick")
    pid = served(wf, image, secrets, "--task", "extract")["server_pid"]
    proc = start_slow_run(engine, image, tmp_path / "slow")
    try:
        assert proc.poll() is None, proc.communicate()
        proc.kill()  # SIGKILL: the client cannot clean up; its run's child notices the closed connection
        proc.communicate(timeout=60)
        deadline = time.monotonic() + 120
        while leftovers(engine, image) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        proc.kill()
    assert leftovers(engine, image) == []
    assert alive(pid)
    assert served(wf, image, secrets, "--task", "extract")["server_pid"] == pid


def test_the_server_directory_is_private_and_keyed_by_python_airflow_and_ap_build(tmp_path: Path):
    assert runclient.server_key("3.3.2") != runclient.server_key("2.10.3")
    assert runclient.private_dir(tmp_path / "new") and stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    assert not runclient.private_dir(shared)


def test_the_server_gets_no_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("SECRET_API_KEY", "y")
    env = runclient.server_env()
    assert "AWS_SECRET_ACCESS_KEY" not in env and "SECRET_API_KEY" not in env and env["PATH"] == os.environ["PATH"]


def test_the_server_can_be_turned_off(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AP_BUILD_RUN_SERVER", "0")
    assert not runclient.enabled()
    monkeypatch.setenv("AP_BUILD_RUN_SERVER", "1")
    assert runclient.enabled()


@pytest.mark.e2e
@pytest.mark.xdist_group("engine")
def test_a_server_stopped_during_a_run_leaves_the_run_going_and_the_next_run_starts_a_new_server(
        image: str, engine: Engine, tmp_path: Path):  # noqa: F811
    wf, secrets, _ = write_tree(tmp_path / "quick")
    pid = served(wf, image, secrets, "--task", "extract")["server_pid"]
    proc = start_slow_run(engine, image, tmp_path / "slow")
    try:
        assert proc.poll() is None, proc.communicate()
        os.kill(pid, signal.SIGTERM)  # the server exits (within a second); the slow run's child goes on
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(pid) and proc.poll() is None
        new = served(wf, image, secrets, "--task", "extract")["server_pid"]  # not blocked by the running child
        assert new not in (None, pid)
        proc.send_signal(signal.SIGINT)  # Ctrl-C still reaches the orphaned run
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert leftovers(engine, image) == []
