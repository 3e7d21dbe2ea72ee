"""Hostile settings files (`--config`), environment (DOCKER_HOST, SOURCE_DATE_EPOCH), a registry that does
not speak HTTP, and numbers that could overflow: each a clean `error:` + `hint:` (exit 2) or a file:line
problem (exit 1), never a traceback or `internal error`."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ap_build.engine import host_problem
from ap_build.errors import UsageError
from ap_build.workflow.settings import MAX_CONFIG_BYTES, load_settings

from .support import assert_clean

GOOD = """\
dag:
  repository: ministryofjustice/example
  tag: v1
maintainers: [octocat]
tags:
  business_unit: HQ
  owner: someone@justice.gov.uk
"""


def _manifest(root: Path, text: str = GOOD) -> Path:
    path = root / "environments" / "development" / "proj" / "flow" / "workflow.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


SETTINGS = [  # (name, config file content, expected in the one error line)
    ("aliases a string", b'aliases = "x"\n', "cfg.toml:1: aliases: Input should be a valid dictionary (got 'x')"),
    ("namespace a list", b'namespace = ["a"]\n', "cfg.toml:1: namespace: Input should be a valid string"),
    ("namespace not a name", b'namespace = "Bad Name!"\n', "cfg.toml:1: namespace: not in the expected form"),
    ("airflow quoted", b'airflow = "3"\n', "cfg.toml:1: airflow: Input should be 2 or 3"),
    ("airflow huge", b"airflow = 99999999999999999999\n", "cfg.toml:1: airflow: "),
    ("bool as text", b'registry = "r.example"\nkube_in_cluster = "false"\n', "cfg.toml:2: kube_in_cluster"),
    ("bad alias in a table", b'[aliases]\n"my-project" = "Bad_Alias"\n', "cfg.toml:2: aliases.my-project"),
    ("host alias misspelt", b'[hmcts_sdp_networking]\nhost_aliases = [{ ip = "10.0.0.1", hostname = ["a"] }]\n',
     "cfg.toml:2: hmcts_sdp_networking.host_aliases.0.hostnames: Field required"),
    ("iam not a table", b"iam = 3\n", "cfg.toml:1: iam: Input should be a valid dictionary"),
    ("unknown key", b'namspace = "x"\n', "cfg.toml:1: unknown setting(s) namspace"),
    ("not TOML", b"x = \n", "cfg.toml:1:5: invalid TOML"),
    ("not UTF-8", b'namespace = "ok"\nregistry = "\xff\xfe"\n', "cfg.toml:2: not UTF-8 text (byte 0xff)"),
    ("too big", b"# " + b"x" * MAX_CONFIG_BYTES + b"\n", "more than 1,048,576 bytes"),
]


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in SETTINGS], ids=[c[0] for c in SETTINGS])
@pytest.mark.parametrize("command", ["show", "compile"])
def test_bad_settings_file_is_one_error_naming_file_line_and_key(cli, tmp_path: Path, content: bytes,
                                                                 expected: str, command: str) -> None:
    config = tmp_path / "cfg.toml"
    config.write_bytes(content)
    path = _manifest(tmp_path)
    extra = ["-o", str(tmp_path / "out")] if command == "compile" else []
    r = cli("workflow", command, str(path), *extra, "--config", str(config))
    assert_clean(r, (2,), expected)
    assert "\nhint: " in r.stderr
    assert not (tmp_path / "out").exists()  # nothing compiled with settings that were refused


@pytest.mark.parametrize(("config", "expected"), [("/dev/zero", "not a regular file"),
                                                  ("/nonexistent/cfg.toml", "No such file or directory")])
def test_special_and_missing_settings_files(cli, tmp_path: Path, config: str, expected: str) -> None:
    r = cli("workflow", "show", str(_manifest(tmp_path)), "--config", config)
    assert_clean(r, (2,), expected)


def test_good_settings_override_and_are_typed(tmp_path: Path) -> None:
    config = tmp_path / "cfg.toml"
    config.write_text('namespace = "jobs"\nairflow = 3\n[aliases]\n"my-project" = "mp"\n')
    s = load_settings(config)
    assert (s.namespace, s.airflow, s.aliases) == ("jobs", 3, {"my-project": "mp"})


_LITERALS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str), st.booleans().map(lambda b: str(b).lower()),
    st.text(max_size=20).map(json.dumps), st.lists(st.text(max_size=5), max_size=3).map(json.dumps),
    st.floats(allow_nan=False, allow_infinity=False).map(repr), st.just("{ a = 1 }"), st.just("[1, \"a\"]"),
)
_KEYS = st.sampled_from(["registry", "namespace", "airflow", "kube_config_file", "kube_in_cluster", "aws_region",
                         "slack_connection", "slack_base_url", "notify_per", "aliases", "hmcts_sdp_networking",
                         "iam", "other"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_KEYS, _LITERALS), max_size=4, unique_by=lambda kv: kv[0]) | st.binary(max_size=200))
def test_any_settings_file_loads_or_is_a_usage_error(tmp_path: Path, pairs: list[tuple[str, str]] | bytes) -> None:
    config = tmp_path / "cfg.toml"
    config.write_bytes(pairs if isinstance(pairs, bytes) else "".join(f"{k} = {v}\n" for k, v in pairs).encode())
    try:
        load_settings(config)
    except UsageError as exc:
        assert exc.message.startswith(str(config)) and exc.hint


DOCKER_HOSTS = [
    ("tcp://127.0.0.1:99999", "out-of-range port"),
    ("tcp://[::1", "unreadable address"),
    ("tcp://127.0.0.1:-1", "unreadable address"),
    ("tcp://host:abc", "unreadable address"),
    ("tcp://127.0.0.1:0", "port 0"),
    ("tcp://", "no host name"),
    ("unix://", "no socket path"),
    ("foo://x", "unknown scheme 'foo'"),
    ("tcp://a b:1", "spaces or control characters"),
    ("tcp://a\x01:1", "spaces or control characters"),
    ("tcp://" + "a" * 5000 + ":1", "over 1,024 characters"),
]


@pytest.mark.parametrize(("host", "expected"), DOCKER_HOSTS, ids=[h[:30] for h, _ in DOCKER_HOSTS])
def test_bad_docker_host_is_reported_by_doctor(cli, monkeypatch: pytest.MonkeyPatch, host: str,
                                               expected: str) -> None:
    monkeypatch.setenv("DOCKER_HOST", host)
    r = cli("doctor", "--registry", "http://127.0.0.1:1")
    assert_clean(r, (2,), "required parts are missing: engine")
    assert "is not an engine address: " in r.stdout and expected in r.stdout
    assert "fix: set DOCKER_HOST" in r.stdout


def test_bad_docker_host_stops_a_command_with_one_error(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:99999")
    r = cli("image", "test", "nothing:1")
    assert_clean(r, (2,), "error: DOCKER_HOST='tcp://127.0.0.1:99999' is not an engine address")
    assert "\nhint: set DOCKER_HOST" in r.stderr


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.builds(lambda s, h, p: f"{s}://{h}:{p}",
                                                  st.sampled_from(["tcp", "http", "https", "unix", "x"]),
                                                  st.text(max_size=10), st.integers(-(2**40), 2**40))))
def test_docker_host_is_parsed_or_named(url: str) -> None:
    """Every DOCKER_HOST either has a named problem or is one the Docker SDK accepts or refuses cleanly."""
    if host_problem(url) is None:
        with contextlib.suppress(docker.errors.DockerException):
            docker.APIClient(base_url=url, version="1.41").close()


@pytest.fixture
def not_http() -> Iterator[int]:
    """A loopback port that answers every connection with an SSH banner and garbage, not HTTP."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\x00\x01\xff garbage\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def test_registry_that_does_not_speak_http_is_a_failed_check(cli, not_http: int) -> None:
    r = cli("doctor", "--json", "--registry", f"127.0.0.1:{not_http}")
    assert_clean(r, (0, 2))
    checks = {c["name"]: c for c in json.loads(r.stdout)}
    assert checks["registry"]["ok"] is False
    assert checks["registry"]["detail"] == f"127.0.0.1:{not_http}: no HTTP answer (BadStatusLine)"


@pytest.mark.parametrize("epoch", ["99999999999999999999", "253402300800", "²", "-5", "1e9"])
def test_source_date_epoch_out_of_range_is_a_usage_error(cli, monkeypatch: pytest.MonkeyPatch, epoch: str) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
    r = cli("image", "build", "python", "--dry-run")
    assert_clean(r, (2,), "SOURCE_DATE_EPOCH")
    assert "up to 253402300799 (year 9999)" in r.stderr


NUMBERS = [  # manifest numbers that would compile into a DAG Airflow cannot load (OverflowError)
    ("  schedule: {hours: 999999999999999}\n", "dag.schedule.hours: Input should be less than or equal to 87600"),
    ("  schedule: {seconds: 315360001}\n", "dag.schedule.seconds: Input should be less than or equal to 315360000"),
    ("  retries: 99999999999999999999\n", "dag.retries: Input should be less than or equal to 2147483647"),
    ("  retry_delay: 99999999999999999999\n", "dag.retry_delay: Input should be less than or equal to 315360000"),
    ("  max_active_runs: 4294967296\n", "dag.max_active_runs: Input should be less than or equal to 2147483647"),
]


@pytest.mark.parametrize(("line", "expected"), NUMBERS, ids=[n[0].strip() for n in NUMBERS])
def test_unbounded_manifest_numbers_are_problems(cli, tmp_path: Path, line: str, expected: str) -> None:
    path = _manifest(tmp_path, GOOD.replace("  tag: v1\n", "  tag: v1\n" + line))
    r = cli("workflow", "compile", str(path), "-o", str(tmp_path / "out"))
    assert_clean(r, (1,), "workflow.yml:4:")
    assert expected in r.stdout + r.stderr
    assert not list((tmp_path / "out").rglob("*.py"))


def test_jobs_overflow_is_a_usage_error(cli, tmp_path: Path) -> None:
    r = cli("workflow", "compile", str(_manifest(tmp_path)), "-o", str(tmp_path / "out"), "-j", "99999999999999")
    assert_clean(r, (2,), "--jobs 99999999999999")


@pytest.mark.parametrize("snapshot", ["99999999T999999Z", "20251301T000000Z", "20250230T000000Z", "20250101T250000Z"])
def test_snapshot_that_names_no_time_is_a_usage_error(cli, snapshot: str) -> None:
    r = cli("image", "build", "python", "--dry-run", "--snapshot", snapshot)
    assert_clean(r, (2,), f"snapshot '{snapshot}' is not a timestamp like 20250101T000000Z")


@pytest.mark.parametrize(("text", "expected"), [(None, 600.0), ("120", 120.0), ("abc", 600.0), ("nan", 600.0),
                                                ("1e999", 600.0), ("-5", 600.0), ("0", 600.0), ("86400", 86400.0)])
def test_run_server_idle_time_from_the_environment_is_bounded(text: str | None, expected: float) -> None:
    from ap_build.workflow.run.server import IDLE_S, idle_seconds

    assert IDLE_S == 600.0 and idle_seconds(text) == expected
