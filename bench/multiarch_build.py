"""Benchmark: full arm64 runtime builds under emulation against the amd64 build of the same runtime, same run.

On this (amd64) machine, with its sources (`--sources auto`: Debian's archive + PyPI), for each platform:
  - the bootstrapped Debian base (mmdebstrap, `rebuild`: both bases made in this run; arm64 under qemu)
  - for each runtime (python, r): a cold `image build --platform <p> --no-cache` through the pipeline
Each arm64 image is checked: config Architecture arm64, `uname -m` aarch64. Prints each time and the
arm64/amd64 ratio; the machine's load before and after.

    source scripts/env.sh && nice python bench/multiarch_build.py [--runtime python] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from dataclasses import replace

from ap_build.engine import Engine
from ap_build.images.base import bootstrap, spec_for
from ap_build.images.pipeline import BuildRequest, build
from ap_build.images.platforms import AMD64, ARM64, Platform, host_platform, platform_tag

BENCH_EPOCH = "1735689601"  # one second after the recipes' epoch: bases of their own, bootstrapped in this run


def timed_base(engine: Engine, target: Platform) -> tuple[str, float]:
    boot = spec_for(epoch=BENCH_EPOCH)
    boot = replace(boot, platform=None if target == host_platform() else target)
    t0 = time.perf_counter()
    ref = bootstrap(engine, boot, rebuild=True)
    return ref, time.perf_counter() - t0


def timed_build(engine: Engine, runtime: str, base: str, target: Platform) -> dict[str, object]:
    tag = f"localhost/ap-build-bench/{runtime}-base:multiarch"
    request = BuildRequest(runtime=runtime, version="0.0.0-bench", tag=tag, base=base, platform=target.name,
                           nocache=True)
    t0 = time.perf_counter()
    report = build(request, engine)
    seconds = time.perf_counter() - t0
    info = engine.inspect(report.image_id)
    code, machine = engine.run(report.image_id, ["-m"], entrypoint=["uname"])
    assert info.get("Architecture") == target.arch, info.get("Architecture")
    assert code == 0 and machine.strip() == target.machine, machine
    return {"runtime": runtime, "platform": target.name, "tag": platform_tag(tag, target), "seconds": round(seconds, 1),
            "image_id": report.image_id, "size_mb": round(report.size_bytes / 1e6), "uname_m": machine.strip(),
            "components": report.components}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", action="append", choices=["python", "r"])
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()
    runtimes = args.runtime or ["python", "r"]
    engine = Engine.connect()
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()
    bases: dict[str, float] = {}
    builds: list[dict[str, object]] = []
    for target in (AMD64, ARM64):
        ref, seconds = timed_base(engine, target)
        bases[target.name] = round(seconds, 1)
        print(f"base {target.name}: {seconds:.1f} s ({ref})", flush=True)
        for runtime in runtimes:
            builds.append(timed_build(engine, runtime, ref, target))
            print(f"{runtime} {target.name}: {builds[-1]['seconds']} s, {builds[-1]['size_mb']} MB, "
                  f"uname -m {builds[-1]['uname_m']}", flush=True)
    ratios = {"base": round(bases[ARM64.name] / bases[AMD64.name], 1)}
    for runtime in runtimes:
        amd, arm = (next(float(str(b["seconds"])) for b in builds
                         if b["runtime"] == runtime and b["platform"] == p.name) for p in (AMD64, ARM64))
        ratios[runtime] = round(arm / amd, 1)
        total = (arm + bases[ARM64.name]) / (amd + bases[AMD64.name])
        ratios[f"{runtime}+base"] = round(total, 1)
    result = {"date": started, "load_before": [round(x, 1) for x in load_before],
              "load_after": [round(x, 1) for x in os.getloadavg()], "cores": os.cpu_count(), "bases_s": bases,
              "builds": builds, "arm64_over_amd64": ratios}
    print(json.dumps({k: v for k, v in result.items() if k != "builds"}, indent=2))
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
