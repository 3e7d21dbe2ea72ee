"""What crosses the run server's socket: a typed, versioned message format (pure but for the socket I/O).

Each message is one frame: a 4-byte big-endian length, then that many bytes of JSON (at most MAX_FRAME),
an object whose `v` is PROTOCOL and whose `type` names one of the models below; pydantic validates it, and
anything else (a pickle, another version, a missing or extra field, a wrong type) is a ProtocolError: the
run server refuses it and runs nothing. Nothing is ever unpickled or evaluated.

The client sends one RunRequest (the checked run: a Job) and may send Stop (Ctrl-C); the server's child
answers with the run's events, then one of Done, Interrupted or Failed.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import struct
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ap_build.errors import ApBuildError
from ap_build.workflow.run.mask import Masker

PROTOCOL = 1
MAX_FRAME = 16 * 2**20  # a job carries a compiled DAG file (~10 kB) and the secrets: far below
HEADER = struct.Struct("!I")
NO_EXPIRY = "AWS_CREDENTIAL_EXPIRATION"  # an --aws-* value that is no secret (a date)


class ProtocolError(ApBuildError):
    """The peer sent something that is not a message of this protocol (or went away mid-message)."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = PROTOCOL


class Job(BaseModel):
    """Everything the Airflow side needs to run one checked workflow: plain values only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=r"^[0-9a-f]{32}$")  # the run's id: its containers' label
    source: str  # the compiled DAG file, rendered by the CLI for the installed Airflow line
    manifest: str  # where it came from (for messages only)
    start_date: dt.date  # dag.start_date, if the compiled DAG has none of its own
    image: str
    airflow: str
    engine_host: str
    api_version: str
    logical_date: dt.datetime
    conf: dict[str, str]
    secrets: dict[str, str]  # SECRET_* -> value (memory only, never in a file)
    extra_env: dict[str, str]  # --aws-* credentials
    task: str | None = None
    with_upstream: bool = False
    keep: bool = False
    user_problem: str | None = None  # why runAsNonRoot refuses the image's USER (None: it runs it)

    def mask_values(self) -> list[str]:
        return [*self.secrets.values(), *(v for k, v in self.extra_env.items() if k != NO_EXPIRY)]

    def masker(self) -> Masker:
        return Masker(self.mask_values())


class Outcome(BaseModel):
    """What Airflow says about the run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dag_id: str
    run_id: str
    state: str
    states: dict[str, str]
    cold: bool
    server_pid: int | None = None  # set by a run server's child


# --- client -> server -------------------------------------------------------------------------------
class RunRequest(_Message):
    type: Literal["run"] = "run"
    job: Job


class Stop(_Message):
    type: Literal["stop"] = "stop"


# --- server -> client -------------------------------------------------------------------------------
class Cold(_Message):
    type: Literal["cold"] = "cold"
    text: str


class Plan(_Message):
    type: Literal["plan"] = "plan"
    tasks: list[str]


class Note(_Message):
    type: Literal["note"] = "note"
    text: str


class Settle(_Message):
    type: Literal["settle"] = "settle"
    states: dict[str, str]


class Started(_Message):
    type: Literal["started"] = "started"
    task: str
    container: str


class Line(_Message):
    type: Literal["line"] = "line"
    task: str
    text: str


class TaskError(_Message):
    type: Literal["error"] = "error"
    task: str
    text: str


class Finished(_Message):
    type: Literal["finished"] = "finished"
    task: str
    exit_code: int | None
    succeeded: bool


class Done(_Message):
    type: Literal["done"] = "done"
    outcome: Outcome
    log: str


class Interrupted(_Message):
    type: Literal["interrupted"] = "interrupted"


class Failed(_Message):
    type: Literal["failed"] = "failed"
    error: str  # the ApBuildError subclass's name
    message: str
    hint: str | None
    exit_code: int


ToServer = Annotated[RunRequest | Stop, Field(discriminator="type")]
ToClient = Annotated[Cold | Plan | Note | Settle | Started | Line | TaskError | Finished | Done | Interrupted
                     | Failed, Field(discriminator="type")]
_TO_SERVER: TypeAdapter[RunRequest | Stop] = TypeAdapter(ToServer)
_TO_CLIENT: TypeAdapter[ToClient] = TypeAdapter(ToClient)


def encode(message: _Message) -> bytes:
    """One frame. JSON with ASCII escapes, so any str (a path's surrogate escapes too) travels."""
    body = json.dumps(message.model_dump(mode="json"), ensure_ascii=True, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"a {message.__class__.__name__} message of {len(body)} bytes is over the protocol's "
                            f"{MAX_FRAME}", hint="a secret or param that large cannot be passed to a run")
    return HEADER.pack(len(body)) + body


def send(sock: socket.socket, message: _Message) -> None:
    sock.sendall(encode(message))


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ProtocolError("the peer closed the connection" + (" mid-message" if chunks or size < 4 else ""))
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket) -> bytes:
    """One frame's body (the header checked first: an oversized length is refused before reading it)."""
    (size,) = HEADER.unpack(_read_exactly(sock, HEADER.size))
    if size > MAX_FRAME:
        raise ProtocolError(f"a frame of {size} bytes announced: over the protocol's {MAX_FRAME} (not a "
                            f"protocol-{PROTOCOL} message)")
    return _read_exactly(sock, size)


def decode(body: bytes, adapter: TypeAdapter[object]) -> object:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError(f"not a protocol-{PROTOCOL} message: the frame is not JSON "
                            f"(starts with {body[:8]!r})") from None
    if isinstance(data, dict) and data.get("v") != PROTOCOL:
        raise ProtocolError(f"protocol version {str(data.get('v'))[:20]!r}: this side speaks version {PROTOCOL}",
                            hint="ap-build's client and run server differ: run again, or with --no-server")
    try:
        return adapter.validate_python(data)
    except (ValidationError, RecursionError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else {"loc": (), "msg": "nested too deep"}
        where = ".".join(str(p) for p in first["loc"])
        raise ProtocolError(f"not a protocol-{PROTOCOL} message: {where or 'message'}: {first['msg']}") from None


def receive_request(sock: socket.socket) -> RunRequest | Stop:
    return decode(read_frame(sock), _TO_SERVER)  # type: ignore[return-value]


def receive_event(sock: socket.socket) -> ToClient:
    return decode(read_frame(sock), _TO_CLIENT)  # type: ignore[return-value]


def peer_credentials(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a Unix socket, as the kernel recorded it at connect()."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    return pid, uid
