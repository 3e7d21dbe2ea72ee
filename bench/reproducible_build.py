"""Benchmark: what `image build --reproducible` costs over a cold build, and whether two storage roots agree.

For each runtime (python, r), through the whole CLI, in one run, with SOURCE_DATE_EPOCH fixed:
  - a cold build (`--no-cache --no-reproducible`, from the bootstrapped base)  <- the named baseline
  - a cold reproducible build (`--no-cache --reproducible`), the same inputs
  - the ratio (reproducible / cold), and the normalisation's own seconds (the CLI's `reproducible:` line) against
    the cold build: on a machine whose load moves (other builds), the build steps of the two runs differ by more
    than the normalisation costs, so `normalise / cold` is the steadier figure of the overhead
`--rounds N` alternates the two N times (cold first, then reproducible first) and reports each pair.
Target (issue 22): reproducible <= 1.10 x cold.

`--second-engine unix:///run/ap-build-root2/podman.sock` adds, per runtime, the same `--no-cache
--reproducible` build on another engine (e.g. a second Podman API service with its own --root/--runroot:
an empty storage root, so its Debian base is bootstrapped there too) and checks that both give one image ID,
layer for layer.

Run it from a checkout that does not move during the run: the image's revision label is ap-build's commit (an
input), so a commit between two builds gives two image IDs.

    source scripts/env.sh && python bench/reproducible_build.py [--runtime python] [--rounds 1]
        [--second-engine URL] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

from ap_build.engine import Engine

AP_BUILD = str(Path(sys.executable).parent / "ap-build")
EPOCH = "1735689600"


def build(runtime: str, *, reproducible: bool, host: str) -> dict[str, object]:
    """One cold build through the CLI on the engine at `host`: seconds, image ID, normalisation seconds."""
    tag = f"localhost/ap-build-bench/repro-{runtime}:{uuid.uuid4().hex[:8]}"
    cmd = [AP_BUILD, "image", "build", runtime, "--sources", "debian", "--base", "bootstrap",
           "--version", "0.0.0-bench", "--tag", tag, "--no-cache", "--json",
           "--reproducible" if reproducible else "--no-reproducible"]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "DOCKER_HOST": host})
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    found = re.search(r"reproducible: \S+ normalised to \S+ \(([\d.]+) s\)", proc.stderr)
    return {"seconds": round(seconds, 1), "image_id": report["image_id"], "tag": tag, "load": round(load, 1),
            "normalise_s": float(found.group(1)) if found else None}


def layers(host: str, image: str) -> list[str]:
    return list(Engine.connect(host).inspect(image)["RootFS"]["Layers"] or [])


def clean(host: str, *images: str) -> None:
    engine = Engine.connect(host)
    for image in images:
        engine.remove_image(image, force=True)


def run(runtime: str, rounds: int, host: str, second: str) -> dict[str, object]:
    pairs = []
    for i in range(rounds):
        order = (False, True) if i % 2 == 0 else (True, False)
        got = {flag: build(runtime, reproducible=flag, host=host) for flag in order}
        cold, repro = got[False], got[True]
        pairs.append({"cold_s": cold["seconds"], "reproducible_s": repro["seconds"],
                      "ratio": round(float(repro["seconds"]) / float(cold["seconds"]), 3),  # type: ignore[arg-type]
                      "normalise_s": repro["normalise_s"], "load": [cold["load"], repro["load"]],
                      "normalise_vs_cold": round(float(repro["normalise_s"] or 0) / float(cold["seconds"]), 3),  # type: ignore[arg-type]
                      "image_id": repro["image_id"]})
        ids = {p["image_id"] for p in pairs}
        clean(host, str(cold["tag"]))
        if i + 1 < rounds or not second:
            clean(host, str(repro["tag"]))
    out: dict[str, object] = {"runtime": runtime, "pairs": pairs,
                              "ratio_best": min(float(p["ratio"]) for p in pairs),  # type: ignore[arg-type]
                              "reproducible_ids": sorted(ids)}
    if second:
        other = build(runtime, reproducible=True, host=second)  # the same inputs, an empty storage root
        out["two_roots"] = {"here": repro["image_id"], "there": other["image_id"],
                            "same": repro["image_id"] == other["image_id"]
                            and layers(host, str(repro["tag"])) == layers(second, str(other["tag"])),
                            "there_s": other["seconds"]}
        clean(host, str(repro["tag"]))
        clean(second, str(other["tag"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtime", action="append", choices=["python", "r"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--second-engine", default="", help="DOCKER_HOST of an engine on another storage root")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    host = os.environ.get("DOCKER_HOST") or Engine.connect().host
    results = [run(rt, args.rounds, host, args.second_engine) for rt in args.runtime or ["python", "r"]]
    print(f"{'runtime':<8} {'cold (baseline)':>16} {'--reproducible':>15} {'ratio':>7} {'normalise':>10} "
          f"{'/cold':>6} {'load':>10}")
    for r in results:
        for p in r["pairs"]:  # type: ignore[attr-defined]
            print(f"{r['runtime']:<8} {p['cold_s']:>14.1f} s {p['reproducible_s']:>13.1f} s {p['ratio']:>7.3f} "
                  f"{p['normalise_s'] or 0:>8.1f} s {p['normalise_vs_cold']:>6.3f} {p['load'][0]:>4}/{p['load'][1]:<4}")
        if "two_roots" in r:
            two = r["two_roots"]
            print(f"{r['runtime']}: two storage roots give one image ID, layer for layer: {two['same']} "  # type: ignore[index]
                  f"({two['here'][:19]} / {two['there'][:19]})")  # type: ignore[index]
        print(f"{r['runtime']}: --reproducible builds gave {len(r['reproducible_ids'])} image ID(s)")  # type: ignore[arg-type]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
