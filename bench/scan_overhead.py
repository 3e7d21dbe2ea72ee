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
    with tempfile.TemporaryDirectory(prefix="ap-build-bench-") as tmp_s:
        tmp = Path(tmp_s)
        cwd = tmp / "cwd"
        cwd.mkdir()
        t = time.perf_counter()
        archive = engine.save(image, tmp / "image.tar")
        save_s = time.perf_counter() - t
        size_mb = archive.stat().st_size / 1e6
        cache = write_trivy_db(
            tmp / "cache",
            [
                Advisory("CVE-2099-0001", "zlib", "HIGH", fixed_version="99:0"),
                Advisory("CVE-2099-0002", "glibc", "CRITICAL"),
            ],
        )
        opts = TrivyOptions(cache_dir=cache, skip_db_update=True)
        base_cmd = scan_command(trivy, Source(archive=archive), opts, tmp / "plain.json")
        apb_cmd = [ap_build, "scan", str(archive), "--cache-dir", str(cache), "--skip-db-update", "--json"]
        ref_base = scan_command(trivy, Source(image=image, docker_host=engine.host), opts, tmp / "plain.json")
        ref_apb = [ap_build, "scan", image, "--cache-dir", str(cache), "--skip-db-update", "--json"]
        timed(base_cmd, cwd)  # warm Trivy's layer cache for both sides
        timed(apb_cmd, cwd)
        rows: dict[str, list[float]] = {
            k: [] for k in ("trivy --input", "ap-build ARCHIVE", "trivy IMAGE(docker)", "ap-build IMAGE")
        }
        for _ in range(args.runs):  # interleaved, so load on the shared machine hits both sides alike
            rows["trivy --input"].append(timed(base_cmd, cwd))
            rows["ap-build ARCHIVE"].append(timed(apb_cmd, cwd))
            rows["trivy IMAGE(docker)"].append(timed(ref_base, cwd))
            rows["ap-build IMAGE"].append(timed(ref_apb, cwd))
        t = time.perf_counter()
        subprocess.run([ap_build, "--version"], capture_output=True, check=True)
        startup = time.perf_counter() - t
    med = {k: statistics.median(v) for k, v in rows.items() if v}
    print(f"image: {image}  ({size_mb:.0f} MB archive; engine save took {save_s:.2f}s)")
    print(f"runs: {args.runs} each, medians; `ap-build --version` start-up: {startup:.2f}s")
    for k, v in med.items():
        print(f"  {k:22s} {v:6.2f}s")
    r = med["ap-build ARCHIVE"] / med["trivy --input"]
    print(f"overhead ap-build ARCHIVE vs trivy --input (same archive, same flags): x{r:.2f} ({(r - 1) * 100:+.0f}%)")
    if "trivy IMAGE(docker)" in med:
        r2 = med["ap-build IMAGE"] / med["trivy IMAGE(docker)"]
        print(f"overhead ap-build IMAGE vs trivy IMAGE --image-src docker: x{r2:.2f} ({(r2 - 1) * 100:+.0f}%)")


if __name__ == "__main__":
    main()
