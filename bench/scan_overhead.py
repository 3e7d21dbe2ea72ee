"""Benchmark: `ap-build scan` against a plain `trivy image` run with the same flags, on the same image.

Usage: python bench/scan_overhead.py [IMAGE] [--runs N]

IMAGE defaults to the Python runtime base that `ap-build image build python --sources debian` builds
(built here if the engine does not have it). The vulnerability DB is written by the benchmark with an
advisory for EVERY package installed in the image (mixed severities, half of them fixed), so Trivy's
report and ap-build's policy, ignore and rendering work are the size of a real scan's, not a toy's.

Both sides run the same Trivy command line (`scan_command`, the one `ap-build scan` runs), the same DB
and the same cache state, interleaved run by run:
- cold: a fresh cache dir holding only the DB, as in CI (a new image, no cached layers);
- warm: a re-scan of cached layers (the smallest Trivy time, so the worst ratio for a wrapper).
Sources: the engine image (`--image-src docker`, what CI scans after a build) and a `docker save` archive;
`as CI` is the runtime template's workflow command (the table on stdout, plus SARIF and markdown reports).
Also: the library call `gate.scan()` in this process (ap-build's own work without interpreter start-up),
and `ap-build --version` (the start-up alone). Prints medians, the ratios and the fixed overhead.
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

from support.images import build_runtime  # noqa: E402
from support.trivydb import SEVERITIES, Advisory, write_trivy_db  # noqa: E402

from ap_build.engine import Engine  # noqa: E402
from ap_build.scan.trivy import Source, TrivyOptions, find_trivy, scan_command  # noqa: E402


def timed(cmd: list[str], cwd: Path, ok: tuple[int, ...] = (0, 1)) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode not in ok:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed


def advisories_for(engine: Engine, image: str) -> list[Advisory]:
    """One advisory per installed Debian source package and Python distribution of `image`."""
    script = (
        "dpkg-query -W -f '${source:Package}\\n' | sort -u | sed 's/^/deb /'; "
        "python3 -m pip list --format=freeze 2>/dev/null | cut -d= -f1 | sed 's/^/pip /'"
    )
    code, out = engine.run(image, ["-c", script], entrypoint=["sh"])
    if code != 0:
        sys.exit(f"cannot list the packages of {image}: {out[-500:]}")
    advisories = []
    for i, line in enumerate(sorted(set(out.split("\n")) - {""})):
        kind, name = line.split(" ", 1)
        severity = SEVERITIES[i % len(SEVERITIES)]
        vid = f"CVE-2099-{i:05d}"
        if kind == "deb":
            advisories.append(Advisory(vid, name, severity, fixed_version="99:0" if i % 2 else None))
        else:
            advisories.append(Advisory(vid, name, severity, fixed_version="999.0", ecosystem="pip",
                                       vulnerable=["<999.0"]))
    return advisories


def default_image(engine: Engine) -> str:
    from ap_build.images.base import bootstrap

    return build_runtime(engine, "python", bootstrap(engine)).tag


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("image", nargs="?")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    engine = Engine.connect()
    image = args.image or default_image(engine)
    trivy = find_trivy()
    ap_build = str(Path(sys.executable).parent / "ap-build")
    advisories = advisories_for(engine, image)
    with tempfile.TemporaryDirectory(prefix="ap-build-bench-") as tmp_s:
        tmp = Path(tmp_s)
        cwd = tmp / "cwd"
        cwd.mkdir()
        t = time.perf_counter()
        archive = engine.save(image, tmp / "image.tar")
        save_s = time.perf_counter() - t
        db = write_trivy_db(tmp / "db-template", advisories)

        def commands(cache: Path) -> dict[str, list[str]]:
            opts = TrivyOptions(cache_dir=cache, skip_db_update=True)
            apb = ["--cache-dir", str(cache), "--skip-db-update", "--json"]
            image_src = Source(image=image, docker_host=engine.host)
            return {
                "trivy IMAGE": scan_command(trivy, image_src, opts, tmp / "plain.json"),
                "ap-build scan IMAGE": [ap_build, "scan", image, *apb],
                # what the runtime template's scan workflow runs: the table on stdout plus two reports
                "ap-build scan IMAGE as CI": [ap_build, "scan", image, *apb[:3], "--report", f"sarif={tmp}/s.sarif",
                                              "--report", f"markdown={tmp}/s.md"],
                "trivy ARCHIVE": scan_command(trivy, Source(archive=archive), opts, tmp / "plain.json"),
                "ap-build scan ARCHIVE": [ap_build, "scan", str(archive), *apb],
            }

        def fresh_cache(name: str) -> Path:
            return Path(shutil.copytree(db, tmp / name))

        warm = fresh_cache("warm")
        for cmd in commands(warm).values():  # fill Trivy's layer cache for the warm rows
            timed(cmd, cwd)
        rows: dict[str, list[float]] = {}
        for i in range(args.runs):  # interleaved, so load on the shared machine hits both sides alike
            for j, (name, cmd) in enumerate(commands(tmp / "COLD").items()):
                cold = str(fresh_cache(f"cold-{i}-{j}"))
                rows.setdefault(f"cold  {name}", []).append(timed([cold if c == str(tmp / "COLD") else c
                                                                    for c in cmd], cwd))
            for name, cmd in commands(warm).items():
                rows.setdefault(f"warm  {name}", []).append(timed(cmd, cwd))
        from ap_build.scan.gate import scan
        from ap_build.scan.policy import Policy

        opts = TrivyOptions(cache_dir=warm, skip_db_update=True)
        findings = 0
        for _ in range(args.runs):
            for name, target in (("IMAGE", image), ("ARCHIVE", str(archive))):
                t = time.perf_counter()
                result = scan(target, Policy(), opts, workdir=cwd, engine=engine)
                rows.setdefault(f"warm  gate.scan() {name} in-process", []).append(time.perf_counter() - t)
                findings = len(result.verdict.findings)
        startup = statistics.median(timed([ap_build, "--version"], cwd, ok=(0,)) for _ in range(args.runs))
        size_mb = archive.stat().st_size / 1e6
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"image: {image}  ({size_mb:.0f} MB archive; engine save took {save_s:.2f}s)")
    print(f"DB: {len(advisories)} advisories (one per installed package) -> {findings} findings per scan")
    print(f"runs: {args.runs} each, interleaved, medians; `ap-build --version` start-up: {startup:.3f}s")
    for k, v in med.items():
        print(f"  {k:36s} {v:6.3f}s")
    for cache in ("cold", "warm"):
        for src, trivy_src in (("IMAGE", "IMAGE"), ("IMAGE as CI", "IMAGE"), ("ARCHIVE", "ARCHIVE")):
            base, ours = med[f"{cache}  trivy {trivy_src}"], med[f"{cache}  ap-build scan {src}"]
            # each run's ap-build time minus the Trivy run just before it: robust to the machine's drift
            paired = statistics.median(
                o - b for o, b in zip(rows[f"{cache}  ap-build scan {src}"], rows[f"{cache}  trivy {trivy_src}"],
                                      strict=True))
            print(f"overhead {cache} {src:11s}: ap-build {ours:.3f}s vs trivy {base:.3f}s = x{ours / base:.3f} "
                  f"({(ours / base - 1) * 100:+.1f}%); paired difference {paired:+.3f}s = {paired / base * 100:+.1f}%")


if __name__ == "__main__":
    main()
