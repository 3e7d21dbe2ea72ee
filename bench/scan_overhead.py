"""Benchmark: `ap-build scan` against a plain `trivy image` run with the same flags, on the same image.

Usage: python bench/scan_overhead.py [IMAGE] [--runs N]
IMAGE defaults to the bootstrapped Debian base (built FROM nothing else; cached in the engine).
Both sides use the same fixture DB (tests/support/trivydb.py) and the same warmed Trivy cache dir,
so the difference is ap-build's own work: CLI start-up, reading the archive for the base image's
ignore list, applying the policy and rendering. Prints medians and the overhead ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.trivydb import Advisory, write_trivy_db  # noqa: E402

from ap_build.engine import Engine  # noqa: E402
from ap_build.scan.trivy import Source, TrivyOptions, find_trivy, scan_command  # noqa: E402


def timed(cmd: list[str], cwd: Path, ok: tuple[int, ...] = (0, 1)) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode not in ok:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("image", nargs="?")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    engine = Engine.connect()
    if args.image:
        image = args.image
    else:
        from ap_build.images.base import bootstrap

        image = bootstrap(engine)
    trivy = find_trivy()
    ap_build = str(Path(sys.executable).parent / "ap-build")
    advisories = [
        Advisory("CVE-2099-0001", "zlib", "HIGH", fixed_version="99:0"),
        Advisory("CVE-2099-0002", "glibc", "CRITICAL"),
    ]
    with tempfile.TemporaryDirectory(prefix="ap-build-bench-") as tmp_s:
        tmp = Path(tmp_s)
        cwd = tmp / "cwd"
        cwd.mkdir()
        t = time.perf_counter()
        archive = engine.save(image, tmp / "image.tar")
        save_s = time.perf_counter() - t
        size_mb = archive.stat().st_size / 1e6

        def commands(cache: Path) -> dict[str, list[str]]:
            opts = TrivyOptions(cache_dir=cache, skip_db_update=True)
            apb = ["--cache-dir", str(cache), "--skip-db-update", "--json"]
            return {
                "trivy --input ARCHIVE": scan_command(trivy, Source(archive=archive), opts, tmp / "plain.json"),
                "ap-build scan ARCHIVE": [ap_build, "scan", str(archive), *apb],
                "trivy IMAGE (docker src)": scan_command(
                    trivy, Source(image=image, docker_host=engine.host), opts, tmp / "plain.json"
                ),
                "ap-build scan IMAGE": [ap_build, "scan", image, *apb],
            }

        warm_cache = write_trivy_db(tmp / "warm", advisories)
        for cmd in commands(warm_cache).values():  # warm Trivy's layer cache for the warm rows
            timed(cmd, cwd)
        rows: dict[str, list[float]] = {}
        for i in range(args.runs):  # interleaved, so load on the shared machine hits both sides alike
            for name, cmd in commands(warm_cache).items():
                rows.setdefault(f"warm  {name}", []).append(timed(cmd, cwd))
            for j, (name, cmd) in enumerate(commands(tmp / "cold").items()):
                # cold = CI: a new image, an empty layer cache (fresh cache dir with only the DB)
                cold = write_trivy_db(tmp / f"cold-{i}-{j}", advisories)
                cmd = [str(cold) if c == str(tmp / "cold") else c for c in cmd]
                rows.setdefault(f"cold  {name}", []).append(timed(cmd, cwd))
        # ap-build's own work without the interpreter start-up: the library call, in this process
        from ap_build.scan.gate import scan
        from ap_build.scan.policy import Policy

        opts = TrivyOptions(cache_dir=warm_cache, skip_db_update=True)
        for _ in range(args.runs):
            for name, target in (("ARCHIVE", str(archive)), ("IMAGE", image)):
                t = time.perf_counter()
                scan(target, Policy(), opts, workdir=cwd, engine=engine)
                rows.setdefault(f"warm  gate.scan() {name} in-process", []).append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([ap_build, "--version"], capture_output=True, check=True)
        startup = time.perf_counter() - t
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"image: {image}  ({size_mb:.0f} MB archive; engine save took {save_s:.2f}s)")
    print(f"runs: {args.runs} each, medians; `ap-build --version` start-up: {startup:.2f}s")
    for k, v in med.items():
        print(f"  {k:32s} {v:6.2f}s")
    for cache in ("cold", "warm"):
        for src in ("ARCHIVE", "IMAGE"):
            base = med[f"{cache}  trivy --input ARCHIVE" if src == "ARCHIVE" else f"{cache}  trivy IMAGE (docker src)"]
            ours = med[f"{cache}  ap-build scan {src}"]
            print(
                f"overhead {cache} {src:7s}: ap-build {ours:.2f}s vs trivy {base:.2f}s = x{ours / base:.2f} "
                f"({(ours / base - 1) * 100:+.0f}%, {ours - base:+.2f}s)"
            )


if __name__ == "__main__":
    main()
