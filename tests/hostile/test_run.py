"""`workflow run` against hostile input: what the run server is sent (a pickle, malformed or other-version
frames, a peer of another uid), an unusable cache folder, and secrets that cannot be passed or that come
back escaped. The server cases run a real run server (real Airflow imported and warmed) on its own socket."""

from __future__ import annotations

import base64
import json
import os
import pickle
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from workflow.run.test_run import AP_BUILD_AIRFLOW2, image, leftovers, run  # noqa: F401 (fixture)
from workflow.run.test_run import SECRET as RUN_SECRET
from workflow.run.test_run import write_tree as run_tree

from ap_build.workflow.run.mask import Masker

from .support import assert_clean

MANIFEST = """\
dag:
  repository: moj-analytical-services/my-repo
  tag: "1.2.3"
maintainers: [octocat]
tags:
  business_unit: Platforms
  owner: someone@justice.gov.uk
secrets: [api-key]
"""
NOBODY = 65534


class Boom:
    """A pickle that, if ever unpickled, creates a marker file: proof that the server ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.fixture(scope="module")
def server() -> Iterator[Path]:
    """A real run server in a private folder of its own -> the folder (under /tmp: another uid can reach it
    once a test opens it up). On Airflow 2.10 (.venv-airflow2) where there: it warms up quicker than 3."""
    sdir = Path(tempfile.mkdtemp(prefix="ap-build-hostile-"))
    with open(sdir / "server.log", "a") as log:
        python = Path(AP_BUILD_AIRFLOW2).parent / "python"
        proc = subprocess.Popen([str(python if python.exists() else sys.executable), "-m",
                                 "ap_build.workflow.run.server", str(sdir)],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "AP_BUILD_RUN_SERVER_IDLE": "120"})
    try:
        deadline = time.monotonic() + 180
        while not (sdir / "s").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (sdir / "s").exists(), (sdir / "server.log").read_text()
        yield sdir
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(sdir, ignore_errors=True)


def exchange(sdir: Path, payload: bytes) -> bytes:
    """Send raw bytes to the server and read what it answers until it closes the connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(str(sdir / "s"))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def frame(body: bytes) -> bytes:
    return struct.pack("!I", len(body)) + body


def refusal(answer: bytes) -> dict:
    (size,) = struct.unpack("!I", answer[:4])
    message = json.loads(answer[4:4 + size])
    assert message["type"] == "failed" and message["error"] == "ProtocolError" and message["exit_code"] == 2
    return message


def test_a_pickle_sent_to_the_run_server_is_refused_and_runs_nothing(server: Path, tmp_path: Path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(("run", Boom(marker)))
    assert pickle.loads(payload)[1] == 0 and marker.exists()  # the pickle works: it runs code when unpickled
    marker.unlink()
    answer = exchange(server, frame(payload))  # framed exactly as multiprocessing's Connection.send frames it
    assert "not a protocol-1 message" in refusal(answer)["message"]
    time.sleep(0.5)
    assert not marker.exists()
    assert "refused a connection: not a protocol-1 message" in (server / "server.log").read_text()


RUN = {"v": 1, "type": "run"}


MALFORMED = {
    "not JSON": (frame(b"garbage"), "not JSON"),
    "not UTF-8": (frame(b"\xff\xfe{}"), "not JSON"),
    "version 2": (frame(json.dumps({**RUN, "v": 2, "job": {}}).encode()), "protocol version '2'"),
    "no version": (frame(json.dumps({"type": "run", "job": {}}).encode()), "protocol version 'None'"),
    "extra field": (frame(json.dumps({**RUN, "job": {}, "extra": 1}).encode()), "not a protocol-1 message"),
    "bad job": (frame(json.dumps({**RUN, "job": {"key": "../../x"}}).encode()), "not a protocol-1 message"),
    "stop first": (frame(json.dumps({"v": 1, "type": "stop"}).encode()), "expected a run request"),
    "a list": (frame(json.dumps([[]] * 3).encode()), "not a protocol-1 message"),
    "deep nesting": (frame(b"[" * 100_000 + b"]" * 100_000), "not a protocol-1 message"),
    "huge length": (struct.pack("!I", 2**31) + b"{}", "over the protocol's"),
    "truncated": (struct.pack("!I", 100) + b"{}", "closed the connection mid-message"),
    "half a header": (b"\x00\x00", "closed the connection"),
}


@pytest.mark.parametrize(("payload", "why"), list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_messages_are_refused_with_a_reason(server: Path, payload: bytes, why: str):
    answer = exchange(server, payload)
    assert why in refusal(answer)["message"]


def test_a_peer_of_another_uid_is_refused_even_where_it_can_reach_the_socket(server: Path):
    """SO_PEERCRED: a folder and socket opened up by mistake still let no other user run anything."""
    os.chmod(server, 0o711)
    os.chmod(server / "s", 0o666)
    read, write = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:  # the child: becomes another user, connects, sends a well-formed message
            code = 1
            try:
                os.close(read)
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(30)
                    sock.connect(str(server / "s"))
                    try:
                        sock.sendall(frame(json.dumps({"v": 1, "type": "stop"}).encode()))
                        answer = sock.recv(100) or b"closed"
                    except (ConnectionResetError, BrokenPipeError):  # closed before or while it wrote
                        answer = b"closed"
                    os.write(write, b"connected:" + answer)
                code = 0
            except BaseException as exc:
                os.write(write, f"error:{exc!r}".encode())
            finally:
                os._exit(code)
        os.close(write)
        os.waitpid(pid, 0)
        with os.fdopen(read, "rb") as fh:
            said = fh.read().decode()
    finally:
        os.chmod(server / "s", 0o600)
        os.chmod(server, 0o700)
    assert said == "connected:closed", said  # it reached the socket, and was shut out without a word
    assert f"refused a connection from uid {NOBODY}" in (server / "server.log").read_text()


def test_the_client_refuses_a_server_of_another_uid():
    """The CLI hands a run (and its secrets) only to a server of its own uid (the listener's credentials)."""
    from ap_build.workflow.run import client

    folder = Path(tempfile.mkdtemp(prefix="ap-build-hostile-"))
    os.chmod(folder, 0o777)
    path = folder / "s"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child listens as another user
        try:
            os.close(read)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(path))
            os.chmod(path, 0o666)
            listener.listen(1)
            os.write(write, b"ready")
            listener.settimeout(30)
            conn, _ = listener.accept()
            conn.recv(1)
        finally:
            os._exit(0)
    try:
        os.close(write)
        with os.fdopen(read, "rb") as fh:
            assert fh.read(5) == b"ready"
        assert os.stat(path).st_uid == NOBODY
        assert client.connect(path) is None
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        shutil.rmtree(folder, ignore_errors=True)


def write_tree(root: Path) -> Path:
    wf = root / "environments" / "development" / "my-project" / "daily" / "workflow.yml"
    wf.parent.mkdir(parents=True)
    wf.write_text(MANIFEST)
    return wf


@pytest.mark.parametrize(("content", "fragment"), [
    (b"api-key=abc\x00def\n", "the value of api-key holds a NUL character"),
    (b'api-key="abc\x00"\n', "the value of api-key holds a NUL character"),
    (b"other=1\napi-key=caf\xe9\n", ":2: the secrets file is not UTF-8 text (byte 0xe9)"),
    (b"\xff\xfeapi-key=x\n", ":1: the secrets file is not UTF-8 text (byte 0xff)"),
    (b"api-key=abc" + b"x" * 200_000 + b"\n", "the value of api-key is 200003 bytes: over the 128 KiB"),
    (b"api-key=abc\n" + b"#" * (1 << 20), "the secrets file is over 1024 KiB"),
])
def test_a_secret_that_cannot_reach_a_container_is_refused_before_the_run(
        cli, tmp_path: Path, content: bytes, fragment: str):
    wf = write_tree(tmp_path)
    secrets = tmp_path / "secrets.env"
    secrets.write_bytes(content)
    r = cli("workflow", "run", str(wf), "--secrets", str(secrets), "--no-server")
    assert_clean(r, (2,), fragment)
    assert "abc" not in r.stdout + r.stderr and "caf" not in r.stderr


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/null", "."])
def test_a_special_secrets_file_is_refused(cli, tmp_path: Path, special: str):
    wf = write_tree(tmp_path)
    r = cli("workflow", "run", str(wf), "--secrets", special, "--no-server")
    assert_clean(r, (2,), "not a regular file")


SECRET = "hunter2\x00-\"q'\\é\t"


@pytest.mark.parametrize("printed", [
    repr(SECRET), ascii(SECRET), json.dumps(SECRET), json.dumps(SECRET, ensure_ascii=False),
    '"hunter2\\x00-\\"q\'\\\\é\\t"',  # Go's %q (an engine's error)
    urllib.parse.quote(SECRET), urllib.parse.quote_plus(SECRET), shlex.quote(SECRET),
    "Authorization: Basic " + base64.b64encode(b"user:" + SECRET.encode()).decode(),
    SECRET.encode().hex(), SECRET.encode("unicode_escape").decode(),
])
def test_escaped_and_encoded_forms_of_a_secret_are_masked(printed: str):
    masked = Masker([SECRET])(f"error: {printed} refused")
    assert "hunter2" not in masked and "aHVudGVyM" not in masked and "68756e74657232" not in masked, masked
    assert masked.startswith("error: ") and masked.endswith(" refused")


@settings(max_examples=200, deadline=None)
@given(secret=st.text(min_size=6, max_size=40).filter(lambda s: "*" not in s and s.strip() == s and s.strip()),
       before=st.text(max_size=10), after=st.text(max_size=10))
def test_no_escaped_form_of_a_secret_survives_masking(secret: str, before: str, after: str):
    mask = Masker([secret])
    for printed in (repr(secret)[1:-1], json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
                    ascii(secret)[1:-1], base64.b64encode(secret.encode()).decode()):
        out = mask(before + printed + after)
        assert printed not in out and secret not in out


@pytest.mark.e2e
@pytest.mark.xdist_group("engine")
def test_an_unusable_cache_folder_falls_back_to_a_run_in_this_process(image: str, tmp_path: Path):  # noqa: F811
    wf, secrets, _ = run_tree(tmp_path)
    r = run(str(wf), "--image", image, "--secrets", str(secrets), "--task", "extract", "--json",
            env={"XDG_CACHE_HOME": "/dev/null"}, binary=AP_BUILD_AIRFLOW2)  # 2.10: the quicker migration
    assert r.returncode == 0, r.stdout + r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert "warning: the run server's folder /dev/null/ap-build/run-server-" in r.stderr
    assert "is unusable (it cannot be made (Not a directory)): running in this process" in r.stderr
    assert "warning: the metadata DB cannot be cached (/dev/null/ap-build/airflow-" in r.stderr
    result = json.loads(r.stdout)
    assert result["server"] is None and result["cold_start"] and result["tasks"][0]["state"] == "success"
    assert RUN_SECRET not in r.stdout + r.stderr


@pytest.mark.e2e
@pytest.mark.xdist_group("engine")
def test_a_task_whose_container_never_started_is_never_reported_a_success(
        image: str, engine, tmp_path: Path):  # noqa: F811
    from support.images import build_cached

    wf, secrets, _ = run_tree(tmp_path)
    broken = build_cached(engine, "workflow-run-no-entrypoint", f'FROM {image}\nENTRYPOINT ["/no/such/program"]\n')
    try:
        r = run(str(wf), "--image", broken, "--secrets", str(secrets), "--task", "extract")
    finally:
        engine.remove_image(broken, force=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "success" not in r.stdout + r.stderr and "exit 0" not in r.stderr
    assert "extract: failed (its container did not run" in r.stderr
    (row,) = [[c.strip() for c in line.split("│")] for line in r.stdout.splitlines()
              if line.lstrip().startswith("extract")]
    assert row[1] == "failed" and row[-1] == "-"
    assert leftovers(engine, broken) == []
