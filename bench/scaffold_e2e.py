"""Benchmark: scaffold -> build -> test -> scan of a fresh repository on a warm runtime base.

Each run scaffolds a NEW repository (its own name, so its program differs), builds it with
`docker build --no-cache` FROM the warm base (pushed to the loopback registry, already in the engine),
then runs `ap-build test` and `ap-build scan` exactly as the generated workflows do (fixture Trivy DB,
no network). Named baseline, measured in the same run and interleaved: the raw tools on the same
image - `cp` of a rendered repository, the same `docker build`, `container-structure-test` and
`trivy image` with the same flags - so the ratio is what ap-build adds. Target (issue 4): < 60 s.

    source scripts/env.sh && python bench/scaffold_e2e.py [--runtime python|r] [--base REF] [--runs N]

--base defaults to the runtime base the test fixtures push (127.0.0.1:5000/ap-build/<rt>-base:0.0.0-test),
resolved to its digest; run `python -m pytest tests/scaffold -k e2e` once first, or pass a pinned REF.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.trivydb import write_trivy_db  # noqa: E402

from ap_build.engine import Engine  # noqa: E402
from ap_build.scaffold.resolve import resolve_base_image  # noqa: E402
from ap_build.scan.structure import find_cst  # noqa: E402
from ap_build.scan.trivy import Source, TrivyOptions, find_trivy, scan_command  # noqa: E402

BIN = Path(sys.executable).parent


def timed(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runtime", default="python", choices=["python", "r"])
    ap.add_argument("--base", help="pinned runtime base (name:tag@sha256:...)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    engine = Engine.connect()
    base = resolve_base_image(args.base or f"127.0.0.1:5000/ap-build/{args.runtime}-base:0.0.0-test", engine)
    engine.pull(base)  # warm: the base is in the engine before the clock starts
    apb, cst, trivy = str(BIN / "ap-build"), find_cst(), find_trivy()
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="ap-build-bench-") as tmp_s:
        tmp = Path(tmp_s)
        for i in range(args.runs):
            # --- ap-build: what a user (and the generated CI) does ----------------------------------------
            repo = tmp / f"bench_repo_{i}"
            image = f"localhost/ap-build-bench/scaffold-{args.runtime}:{i}"
            cache = write_trivy_db(tmp / f"cache-{i}", [])
            steps = {
                "scaffold": [apb, "scaffold", args.runtime, str(repo), "--base-image", base],
                "build": ["docker", "build", "--no-cache", "--quiet", "--tag", image, str(repo)],
                "test": [apb, "test", image, "--config", str(repo / "container-structure-test.yml")],
                "scan": [apb, "scan", image, "--vuln-type", "library", "--ignore-file", str(repo / ".trivyignore"),
                         "--cache-dir", str(cache), "--skip-db-update", "--report", "sarif=scan.sarif"],
            }
            total = 0.0
            for name, cmd in steps.items():
                s = timed(cmd, repo if name != "scaffold" else tmp)
                rows.setdefault(f"ap-build  {name}", []).append(s)
                total += s
            rows.setdefault("ap-build  TOTAL", []).append(total)
            # --- baseline: the raw tools on a copy of the same repository ---------------------------------
            raw = tmp / f"raw_repo_{i}"
            raw_image = f"localhost/ap-build-bench/raw-{args.runtime}:{i}"
            raw_cache = write_trivy_db(tmp / f"raw-cache-{i}", [])
            opts = TrivyOptions(cache_dir=raw_cache, skip_db_update=True, skip_dirs=(), secrets=True)
            t = time.perf_counter()
            shutil.copytree(repo, raw)
            base_steps = {"copy": time.perf_counter() - t}
            base_steps["build"] = timed(["docker", "build", "--no-cache", "--quiet", "--tag", raw_image, str(raw)], raw)
            base_steps["test"] = timed(
                [cst, "test", "--image", raw_image, "--config", str(raw / "container-structure-test.yml")], raw
            )
            cmd = scan_command(trivy, Source(image=raw_image, docker_host=engine.host), opts, raw / "trivy.json")
            base_steps["scan"] = timed(cmd, raw)
            for name, s in base_steps.items():
                rows.setdefault(f"raw tools {name}", []).append(s)
            rows.setdefault("raw tools TOTAL", []).append(sum(base_steps.values()))
            for ref in (image, raw_image):
                engine.remove_image(ref, force=True)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"runtime: {args.runtime}   base: {base}")
    print(f"runs: {args.runs}, medians (fresh repository each run, docker build --no-cache on a warm base)")
    for k, v in med.items():
        print(f"  {k:22s} {v:7.2f}s")
    ours, raw_total = med["ap-build  TOTAL"], med["raw tools TOTAL"]
    print(f"ratio ap-build / raw tools: x{ours / raw_total:.2f} ({ours - raw_total:+.2f}s)")
    print(f"target < 60 s: {'met' if ours < 60 else 'MISSED'} ({ours:.1f}s)")


if __name__ == "__main__":
    main()
