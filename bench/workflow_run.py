"""Benchmark: `ap-build workflow run` of a 3-task workflow against the same three containers run one after
another with plain `docker run` (the named baseline, measured in the same run, interleaved).

The image is a small program built FROM the Python runtime base (default: the one the test fixtures
build, localhost/ap-build/python-base:0.0.0-test); each task prints a line and exits. Reported:
- cold: the first run of this Airflow version, with an empty cache: the run server starts (imports Airflow)
  and the metadata DB is migrated (a temporary XDG_CACHE_HOME, so the user's cache and servers are
  untouched; that server exits when the directory goes). Target < 30 s.
- warm: later runs through the warm run server (the cached DB is copied). Overhead = warm - plain docker
  run; target < 3 s.
- warm, --no-server: later runs in the CLI's own process (Airflow imported per run), for comparison.

    source scripts/env.sh && python bench/workflow_run.py [--base REF] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ap_build.engine import Engine

BIN = Path(sys.executable).parent
PROGRAM = 'import os\nprint("task", os.environ.get("STEP"), "param", os.environ.get("PARAM_RUN_DATE"))\n'
MANIFEST = """\
dag:
  repository: moj-analytical-services/bench-repo
  tag: "1.0"
  params: {run_date: "2025-01-01"}
  tasks:
    extract: {env_vars: {STEP: extract}}
    transform: {env_vars: {STEP: transform}, dependencies: [extract]}
    load: {env_vars: {STEP: load}, dependencies: [transform]}
maintainers: [octocat]
tags: {business_unit: Platforms, owner: someone@justice.gov.uk}
secrets: [api-key]
"""


CPU: dict[str, list[float]] = {}


def timed(cmd: list[str], env: dict[str, str] | None = None, label: str = "") -> float:
    """Wall time; the process's CPU time (user + sys, load-independent) is kept under `label`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if label:
        CPU.setdefault(label, []).append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def plain_docker(image: str) -> list[str]:
    """The baseline: the three containers, one after another, as a shell script would run them."""
    script = " && ".join(
        f"docker run --rm --user 1000 --cpus 1 --memory 4g -e STEP={s} -e PARAM_RUN_DATE=2025-01-01 "
        f"-e SECRET_API_KEY=x {image}" for s in ("extract", "transform", "load"))
    return ["sh", "-c", script]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="localhost/ap-build/python-base:0.0.0-test")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    engine = Engine.connect()
    with tempfile.TemporaryDirectory(prefix="ap-build-bench-") as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "ctx").mkdir()
        (tmp / "ctx" / "main.py").write_text(PROGRAM)
        (tmp / "ctx" / "Dockerfile").write_text(f"FROM {args.base}\nWORKDIR /opt/analyticalplatform\nCOPY main.py .\n"
                                                "USER 1000\nENTRYPOINT [\"python3\", \"main.py\"]\n")
        image = "localhost/ap-build-bench/workflow-run:latest"
        engine.tag(engine.build(tmp / "ctx"), image)
        wf = tmp / "environments" / "development" / "bench" / "daily" / "workflow.yml"
        wf.parent.mkdir(parents=True)
        wf.write_text(MANIFEST)
        (tmp / "secrets.env").write_text("api-key=bench-secret\n")
        cmd = [str(BIN / "ap-build"), "workflow", "run", str(wf), "--image", image,
               "--secrets", str(tmp / "secrets.env")]
        cold_env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "cache"), "AP_BUILD_RUN_SERVER_IDLE": "120"}
        load = [os.getloadavg()[0]]
        docker = [timed(plain_docker(image))]
        cold = timed(cmd, cold_env, "cold")
        warm: list[float] = []
        local: list[float] = []
        for _ in range(args.runs):
            docker.append(timed(plain_docker(image)))
            warm.append(timed(cmd, cold_env, "warm"))
            local.append(timed([*cmd, "--no-server"], cold_env, "no-server"))
        load.append(os.getloadavg()[0])
        time.sleep(1.5)  # the server logs each child's CPU time when it reaps it (within a second)
        served = [float(m) for log in (tmp / "cache").glob("ap-build/run-server-*/server.log")
                  for m in re.findall(r"cpu ([0-9.]+) s", log.read_text())]
        engine.remove_image(image, force=True)
    d, w, n = statistics.median(docker), statistics.median(warm), statistics.median(local)
    print(f"load average (1 min) at the start / end: {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} cores")
    print(f"plain docker run x3 (baseline), median of {len(docker)}: {d:.2f} s")
    print(f"ap-build workflow run, warm (run server, cached Airflow DB), median of {len(warm)}: {w:.2f} s "
          f"= {w / d:.1f}x; overhead {w - d:+.2f} s (target < 3 s)   runs: {', '.join(f'{x:.1f}' for x in warm)}")
    print(f"ap-build workflow run --no-server, warm (cached DB), median of {len(local)}: {n:.2f} s "
          f"= {n / d:.1f}x; overhead {n - d:+.2f} s   runs: {', '.join(f'{x:.1f}' for x in local)}")
    print(f"ap-build workflow run, cold (server started, DB migrated): {cold:.2f} s = {cold / d:.1f}x (target < 30 s)")
    print(f"CPU time of the CLI process (user + sys; the run server's is not counted): warm "
          f"{statistics.median(CPU['warm']):.1f} s, --no-server {statistics.median(CPU['no-server']):.1f} s, "
          f"cold {CPU['cold'][0]:.1f} s")
    if len(served) > 1:
        print(f"CPU time of the run server's child per warm run (from its log), median: "
              f"{statistics.median(served[1:]):.2f} s; cold run's child {served[0]:.2f} s")


if __name__ == "__main__":
    main()
