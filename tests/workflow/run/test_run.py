"""`ap-build workflow run` end to end: a scaffolded repository built FROM the session's Python runtime
base, a 3-task manifest, real Airflow (`dag.test()`) and real containers on the engine."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import docker.errors
import jinja2
import pytest
from support.images import build_cached

from ap_build.cli import main
from ap_build.engine import Engine
from ap_build.workflow.run.pods import RUN_LABEL
from workflow.helpers import AP_BUILD, cli, env_of

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine")]

SECRET = "s3cr3t-" + uuid.uuid4().hex[:12]
PROGRAM = '''\
"""The user's program: says where it runs and what it received, then exits as told."""
import hashlib
import os
import sys
import time

secret = os.environ.get("SECRET_API_KEY", "")
print(f"step={os.environ.get('STEP')} uid={os.getuid()} cwd={os.getcwd()} param={os.environ.get('PARAM_RUN_DATE')}",
      flush=True)
print(f"secret={secret} sha={hashlib.sha256(secret.encode()).hexdigest()[:16]}", flush=True)
time.sleep(float(os.environ.get("SLEEP", "0")))
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
'''
MANIFEST = """\
dag:
  repository: moj-analytical-services/my-repo
  tag: "1.2.3"
  hmcts_sdp_networking: true
  params:
    run_date: "2025-01-01"
  env_vars:
    GREETING: "hello {{ params.run_date }}"
  tasks:
    extract:
      env_vars: {STEP: extract}
    transform:
      env_vars: {STEP: transform, EXIT_CODE: "%(exit)s", SLEEP: "%(sleep)s"}
      dependencies: [extract]
    load:
      compute_profile: gpu-spot-1vcpu-4gb
      env_vars: {STEP: load}
      dependencies: [transform]
maintainers: [octocat]
tags:
  business_unit: Platforms
  owner: someone@justice.gov.uk
secrets: [api-key]
"""
ENGINE_ENV = {"HOME", "HOSTNAME", "TERM", "container"}  # what Docker/Podman add to every container
CONFIG = """\
[hmcts_sdp_networking]
annotations = { "kubernetes.io/egress-bandwidth" = "100M" }
host_aliases = [{ ip = "10.1.2.3", hostnames = ["sdp.example.internal"] }]
"""


@pytest.fixture(scope="module")
def image(python_base_ref: str, engine: Engine, tmp_path_factory: pytest.TempPathFactory):
    """`ap-build scaffold python`, the program above, built FROM the session's runtime base."""
    repo = tmp_path_factory.mktemp("run") / "my_repo"
    try:
        main(["scaffold", "python", str(repo), "--base-image", python_base_ref, "--org", "moj-analytical-services"])
    except SystemExit as exc:
        assert not exc.code, f"ap-build scaffold failed with {exc.code}"
    (repo / "src" / "main.py").write_text(PROGRAM)
    ref = f"localhost/ap-build-test/workflow-run:{uuid.uuid4().hex[:10]}"
    engine.tag(engine.build(repo), ref)
    yield ref
    for attempt in range(5):  # Podman may still be removing a run's container that used the image
        try:
            engine.remove_image(ref, force=True)
            break
        except docker.errors.APIError:
            if attempt == 4:
                raise
            time.sleep(1)


def write_tree(root: Path, *, exit_code: int = 0, sleep: float = 0) -> tuple[Path, Path, Path]:
    wf = root / "environments" / "development" / "my-project" / "daily" / "workflow.yml"
    wf.parent.mkdir(parents=True, exist_ok=True)
    wf.write_text(MANIFEST % {"exit": exit_code, "sleep": sleep})
    (root / "secrets.env").write_text(f"api-key={SECRET}\n")
    (root / "settings.toml").write_text(CONFIG)
    return wf, root / "secrets.env", root / "settings.toml"


# ap-build with the platform's Airflow 2.10.3 stack (.venv-airflow2, scripts/setup.sh --test-deps)
AP_BUILD_AIRFLOW2 = str(Path(__file__).resolve().parents[3] / ".venv-airflow2" / "bin" / "ap-build")


SERVER_ENV = {"AP_BUILD_RUN_SERVER_IDLE": "120"}  # the tests' run servers exit 2 min after their last run


def run(*args: str, timeout: int = 600, env: dict[str, str] | None = None,
        binary: str = AP_BUILD) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run([binary, "workflow", "run", *args], capture_output=True, text=True, timeout=timeout,
                          env={**clean, **SERVER_ENV, **(env or {})})


def run_containers(engine: Engine, image: str) -> list[dict]:
    """Containers of `workflow run` (any run) from this test's image, running or not: one listing, no inspect
    (Podman answers 500 to inspecting a container it is removing)."""
    return [c for c in engine.api.containers(all=True, filters={"label": RUN_LABEL}) if c["Image"] == image]


def leftovers(engine: Engine, image: str) -> list[str]:
    return [c["Names"][0].lstrip("/") for c in run_containers(engine, image)]


# The in-process path (--no-server) on Airflow 3 is covered by the env comparison and Ctrl-C below; here it
# runs on 2.10 only, whose import costs a third of Airflow 3's (the run tests are among CI's slowest).
@pytest.mark.parametrize(("path", "airflow"), [("server", "3"), ("server", "2.10"), ("no-server", "2.10")])
def test_three_tasks_run_in_order_as_uid_1000_with_param_and_secret(
        path: str, airflow: str, image: str, engine: Engine, tmp_path: Path):
    wf, secrets, config = write_tree(tmp_path)
    r = run(str(wf), "--image", image, "--secrets", str(secrets), "--config", str(config), f"--{path}",
            "--param", "run_date=2025-02-02", "--json", binary=AP_BUILD if airflow == "3" else AP_BUILD_AIRFLOW2)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout)
    assert result["airflow"].startswith(f"{airflow}.")
    assert (result["server_pid"] is not None) == (path == "server")  # a warm run server's child ran it, or not
    assert result["ok"] and result["state"] == "success" and result["dag_id"] == "my-project.daily"
    assert [(t["task"], t["state"], t["exit_code"]) for t in result["tasks"]] == [
        ("extract", "success", 0), ("transform", "success", 0), ("load", "success", 0)]
    log = r.stderr
    lines = [log.index(f"step={step} uid=1000 cwd=/opt/analyticalplatform param=2025-02-02") for step in
             ("extract", "transform", "load")]
    assert lines == sorted(lines), log
    assert "extract   | step=extract" in log  # each line prefixed by its task
    assert "warning: a task asks for a GPU and the engine has none: it runs on CPU" in log  # load's profile
    sha = hashlib.sha256(SECRET.encode()).hexdigest()[:16]
    assert log.count(f"secret=*** sha={sha}") == 3  # the secret arrived in every task, and was masked
    assert SECRET not in r.stdout + r.stderr
    assert leftovers(engine, image) == []


@pytest.mark.parametrize("path", ["server", "no-server"])
def test_container_env_is_the_compiled_pods_env(path: str, image: str, engine: Engine, tmp_path: Path, dagbag):
    wf, secrets, config = write_tree(tmp_path)
    aws = {"AWS_ACCESS_KEY_ID": "AKIATESTKEY", "AWS_SECRET_ACCESS_KEY": "aws-" + SECRET, "AWS_REGION": "xx-east-9"}
    r = run(str(wf), "--image", image, "--secrets", str(secrets), "--config", str(config), "--keep", "--json",
            f"--{path}", "--task", "transform", "--with-upstream", "--logical-date", "2025-03-04T05:06:07",
            "--aws-env", env=aws)
    assert r.returncode == 0, r.stdout + r.stderr
    assert aws["AWS_SECRET_ACCESS_KEY"] not in r.stdout + r.stderr
    result = json.loads(r.stdout)
    assert SECRET not in Path(result["log"]).read_text()  # not even in Airflow's own log
    assert [t["task"] for t in result["tasks"]] == ["extract", "transform"]  # not load
    try:
        compiled = cli("workflow", "compile", str(wf), "-o", str(tmp_path / "dags"), "--config", str(config))
        assert compiled.returncode == 0, compiled.stderr
        dag = dagbag(tmp_path / "dags").dags["my-project.daily"]
        image_env = dict(e.split("=", 1) for e in engine.inspect(image)["Config"]["Env"])
        context = {"run_id": result["run_id"], "ts": "2025-03-04T05:06:07+00:00", "ts_nodash": "20250304T050607",
                   "ts_nodash_with_tz": "20250304T050607+0000", "params": {"run_date": "2025-01-01"}}
        for task in result["tasks"]:
            pod = dag.get_task(task["task"]).build_pod_request_obj(dry_run=True)
            (container,) = pod.spec.containers
            expected = {e.name: jinja2.Template(e.value).render(context) for e in container.env if e.value_from is None}
            expected |= {e.name: SECRET for e in container.env if e.value_from is not None}
            assert set(expected) >= set(env_of(dag.get_task(task["task"])))
            got = engine.client.containers.get(task["container"]).attrs
            env = dict(e.split("=", 1) for e in got["Config"]["Env"])
            # --aws-env: the host's credentials (not its region: the pod's AWS_DEFAULT_REGION stays)
            assert (env.pop("AWS_ACCESS_KEY_ID"), env.pop("AWS_SECRET_ACCESS_KEY")) == \
                (aws["AWS_ACCESS_KEY_ID"], aws["AWS_SECRET_ACCESS_KEY"]) and "AWS_REGION" not in env
            extra = {k for k in env if k not in expected and image_env.get(k) != env[k]}
            assert extra <= ENGINE_ENV, "only the image's own ENV and the engine's are extra"
            assert {k: env.get(k) for k in expected} == expected
            assert expected["GREETING"] == "hello 2025-01-01" and expected["AIRFLOW_RUN_ID"] == result["run_id"]
            host = got["HostConfig"]
            limits = container.resources.limits
            assert (limits["cpu"], limits["memory"]) == ("1", "4Gi")
            assert host["NanoCpus"] == 10**9 and host["Memory"] == 4 * 2**30
            assert any("no-new-privileges" in o for o in host.get("SecurityOpt") or [])
            dropped = {c.upper().removeprefix("CAP_") for c in host.get("CapDrop") or []}
            assert ("ALL" in dropped or {"CHOWN", "SETUID", "NET_RAW"} <= dropped) and not host.get("CapAdd")
            assert any("sdp.example.internal" in h and "10.1.2.3" in h for h in host.get("ExtraHosts") or [])
            assert got["Config"]["User"] in ("", "1000") and got["State"]["ExitCode"] == 0
    finally:
        for task in result["tasks"]:
            engine.client.containers.get(task["container"]).remove(force=True)
        shutil.rmtree(Path(result["log"]).parent)  # --keep kept Airflow's run folder too
    assert leftovers(engine, image) == []


@pytest.mark.parametrize("path", ["server", "no-server"])
def test_failed_task_fails_the_run_and_its_downstream_never_starts(
        path: str, image: str, engine: Engine, tmp_path: Path):
    wf, secrets, _ = write_tree(tmp_path, exit_code=3)
    r = run(str(wf), "--image", image, "--secrets", str(secrets), f"--{path}",
            binary=AP_BUILD if path == "server" else AP_BUILD_AIRFLOW2)  # in-process: the quicker import
    assert r.returncode == 1, r.stdout + r.stderr
    table = [[cell.strip() for cell in line.split("│")] for line in r.stdout.splitlines() if "│" in line]
    rows = {row[0]: row for row in table}  # task | state | duration | exit code
    assert rows["extract"][1] == "success" and rows["transform"][1] == "failed" and rows["transform"][-1] == "3"
    assert rows["load"][1] == "upstream_failed" and rows["load"][-1] == "-"
    assert "step=transform" in r.stderr and "step=load" not in r.stderr
    assert SECRET not in r.stdout + r.stderr
    assert leftovers(engine, image) == []


def test_missing_secret_exits_2_before_anything_runs(image: str, engine: Engine, tmp_path: Path):
    wf, secrets, _ = write_tree(tmp_path)
    secrets.write_text("other=1\n")
    r = run(str(wf), "--image", image, "--secrets", str(secrets))
    assert r.returncode == 2
    assert "error:" in r.stderr and "api-key (SECRET_API_KEY)" in r.stderr and "step=" not in r.stderr
    assert run(str(wf), "--image", image).returncode == 2  # no --secrets at all
    assert leftovers(engine, image) == []


def test_missing_image_exits_2_with_how_to_get_it(engine: Engine, tmp_path: Path):
    wf, secrets, _ = write_tree(tmp_path)
    r = run(str(wf), "--secrets", str(secrets))  # the manifest's registry image is not in the engine
    assert r.returncode == 2
    assert "error: image 509399598587.dkr.ecr.eu-west-2.amazonaws.com/moj-analytical-services/my-repo:1.2.3 is " \
           "not in the engine" in r.stderr
    assert "ap-build image build" in r.stderr and "docker pull" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_image_running_as_root_is_refused_as_the_platform_would(image: str, engine: Engine, tmp_path: Path):
    wf, secrets, _ = write_tree(tmp_path)
    rooted = build_cached(engine, "workflow-run-root", f"FROM {image}\nUSER root\n")
    try:
        r = run(str(wf), "--image", rooted, "--secrets", str(secrets))
    finally:
        engine.remove_image(rooted, force=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "runs as root" in r.stderr and "runAsNonRoot" in r.stderr and "step=" not in r.stderr
    assert leftovers(engine, rooted) == []


def start_slow_run(engine: Engine, image: str, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """`workflow run` whose transform task sleeps 300 s, returned once transform's container is running."""
    wf, secrets, _ = write_tree(tmp_path, sleep=300)
    proc = subprocess.Popen([AP_BUILD, "workflow", "run", str(wf), "--image", image, "--secrets", str(secrets), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **SERVER_ENV})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not any(
            c["Labels"].get("ap-build.task") == "transform" and c["State"] == "running"
            for c in run_containers(engine, image)):
        time.sleep(0.5)
    return proc


@pytest.mark.parametrize("path", ["server", "no-server"])
def test_ctrl_c_stops_and_removes_the_running_container(path: str, image: str, engine: Engine, tmp_path: Path):
    proc = start_slow_run(engine, image, tmp_path, f"--{path}")
    try:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "step=load" not in stderr
    assert leftovers(engine, image) == []
