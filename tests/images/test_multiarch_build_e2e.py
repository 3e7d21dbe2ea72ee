"""End to end: a multi-platform build (linux/amd64 + linux/arm64, arm64 under qemu's emulation) on the real
engine, and the faults `image build --platform` turns into one line and exit 2.

A runtime's arm64 base alone takes minutes to bootstrap under emulation (bench/multiarch_build.py measures the
full builds), so the build here is a small stand-in that goes through the same code: the emulation check, the
plan, `base.bootstrap` for each architecture (mmdebstrap --arch, imported with its Architecture; a busybox-only
variant), the engine's build API with `platform=`, the per-platform tags, the host's plain tag, the record
`image push` reads and the combined report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from support.images import TEST_VERSION

from ap_build.doctor import platform_checks
from ap_build.engine import Engine
from ap_build.images import multiarch
from ap_build.images.base import bootstrap, spec_for
from ap_build.images.build import BuildReport
from ap_build.images.platforms import AMD64, ARM64, Platform, host_platform, platform_tag, read_build

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine")]

AP_BUILD = str(Path(sys.executable).parent / "ap-build")
BUSYBOX = "/usr/bin/busybox"


def small_build(engine: Engine, made: list[str]) -> multiarch.OneBuild:
    """One platform's stand-in image: a busybox base bootstrapped for its architecture, then a build step
    that records `uname -m` as the build saw it."""

    def one(target: Platform, tag: str, say: multiarch.Say, _report: Path | None) -> BuildReport:
        boot = replace(spec_for(), platform=None if target == host_platform() else target, variant="extract",
                       include=("busybox-static",))
        base = bootstrap(engine, boot)
        say(f"base {base}")
        with tempfile.TemporaryDirectory() as ctx:
            (Path(ctx) / "Dockerfile").write_text(
                f'FROM {base}\nRUN ["{BUSYBOX}", "sh", "-c", "{BUSYBOX} uname -m > /built-on"]\nUSER 1000\n')
            image_id = engine.build(Path(ctx), platform=target.name)
        engine.tag(image_id, tag)
        made.append(tag)
        return BuildReport(runtime="stand-in", tag=tag, version="0", image_id=image_id, size_bytes=0, base=base,
                           base_id=engine.inspect(base)["Id"], sources="debian", suite=boot.suite, cuda_version=None,
                           components={}, build_seconds=0.0, created="", revision="", platform=target.name)

    return one


def uname(engine: Engine, image: str) -> str:
    code, out = engine.run(image, ["sh", "-c", f"cat /built-on; {BUSYBOX} uname -m"], entrypoint=[BUSYBOX])
    assert code == 0, out
    return out


def test_an_arm64_image_builds_and_runs_under_emulation_beside_amd64(engine: Engine, tmp_path: Path) -> None:
    tag, made, said = f"localhost/ap-build-test/multiarch:{os.getpid()}", [], []
    report = tmp_path / "build-report.json"
    try:
        result = multiarch.build_platforms((AMD64, ARM64), tag, engine, small_build(engine, made), say=said.append,
                                           report=report, write=lambda p, r: p.write_text(r.to_json()))
        arm, amd = engine.inspect(platform_tag(tag, ARM64)), engine.inspect(platform_tag(tag, AMD64))
        assert (arm["Architecture"], amd["Architecture"]) == ("arm64", "amd64")
        assert engine.inspect(arm["Id"])["Id"] != amd["Id"]
        assert uname(engine, platform_tag(tag, ARM64)) == "aarch64\naarch64\n"  # built and run under qemu
        assert uname(engine, platform_tag(tag, AMD64)) == "x86_64\nx86_64\n"
        assert engine.inspect(tag)["Id"] == amd["Id"]  # the plain tag: the host's platform
        assert read_build(tag) == {AMD64: amd["Id"], ARM64: arm["Id"]}  # what `image push TAG` reads
        bases = [line for line in said if "base localhost/ap-build/debian:" in line]
        assert len(bases) == 2 and "-arm64-" in bases[1]  # each architecture its own base
        arm_base = bases[1].rsplit(" ", 1)[1]
        assert engine.inspect(arm_base)["Architecture"] == "arm64"  # imported with its Architecture
        assert any(line.startswith("linux/arm64: building") and "under emulation (/" in line for line in said)
        listed = json.loads(report.read_text())
        assert [(p["platform"], p["image_id"]) for p in listed["platforms"]] == [
            ("linux/amd64", amd["Id"]), ("linux/arm64", arm["Id"])]
        assert (listed["tag"], listed["image_id"]) == (tag, result.image_id) == (tag, amd["Id"])
    finally:
        for ref in [*made, tag]:
            engine.remove_image(ref, force=True)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AP_BUILD, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_the_real_runtime_for_the_hosts_platform_is_the_plain_builds_image(engine: Engine, debian_base: str,
                                                                            python_base_ref: str,
                                                                            tmp_path: Path) -> None:
    """`--platform linux/amd64` through the whole pipeline: the same image as a plain build (same inputs, the
    engine's cache), tagged per platform and plainly, recorded, reported with its platform and provenance."""
    tag = f"localhost/ap-build-test/python-platforms:{os.getpid()}"
    try:
        proc = cli("image", "build", "python", "--platform", "linux/amd64", "--base", debian_base, "--version",
                   TEST_VERSION, "--tag", tag, "--json", "--report", str(tmp_path / "r.json"), "--no-reproducible")
        assert proc.returncode == 0, proc.stderr
        assert "linux/amd64: building " + platform_tag(tag, AMD64) + " natively" in proc.stderr
        data, plain = json.loads(proc.stdout), engine.inspect(python_base_ref)["Id"]
        assert (data["tag"], data["image_id"], data["platform"]) == (tag, plain, "linux/amd64")
        assert [(p["platform"], p["tag"], p["image_id"]) for p in data["platforms"]] == [
            ("linux/amd64", platform_tag(tag, AMD64), plain)]
        assert engine.inspect(tag)["Id"] == engine.inspect(platform_tag(tag, AMD64))["Id"] == plain
        assert read_build(tag) == {AMD64: plain}
        stmt = json.loads((tmp_path / "r-amd64.intoto.json").read_text())["predicate"]["buildDefinition"]
        assert stmt["externalParameters"]["platform"] == stmt["internalParameters"]["platform"] == "linux/amd64"
        assert json.loads((tmp_path / "r.json").read_text())["platforms"] == data["platforms"]
    finally:
        for ref in (tag, platform_tag(tag, AMD64)):
            engine.remove_image(ref)


def test_no_emulation_stops_the_build_before_anything_with_the_fix(engine: Engine) -> None:
    tag = f"localhost/ap-build-test/multiarch-none:{os.getpid()}"
    proc = cli("image", "build", "python", "--platform", "linux/amd64,linux/arm64", "--sources", "debian",
               "--base", "bootstrap", "--tag", tag, env={"AP_BUILD_BINFMT": "/nonexistent"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: cannot build linux/arm64"), proc.stderr
    assert "hint: " in proc.stderr and "update-binfmts --enable qemu-aarch64" in proc.stderr
    assert not any(engine.image_exists(ref) for ref in (tag, platform_tag(tag, AMD64), platform_tag(tag, ARM64)))


def test_doctor_says_how_each_platform_builds_here() -> None:
    checks = {c.name: c for c in platform_checks()}  # this machine, as scripts/setup.sh left it
    assert checks["platform linux/amd64"].ok and checks["platform linux/amd64"].detail.startswith("native")
    arm = checks["platform linux/arm64"]
    assert arm.ok and arm.detail.startswith("emulated: binfmt_misc qemu-aarch64 -> /"), arm
    assert Path(arm.detail.split(" -> ", 1)[1].split(" ")[0]).exists()  # the interpreter it names
    proc = cli("doctor", "--json", env={"AP_BUILD_BINFMT": "/nonexistent"})
    arm = {c["name"]: c for c in json.loads(proc.stdout)}["platform linux/arm64"]
    assert not arm["ok"] and not arm["required"] and "mount -t binfmt_misc" in arm["fix"]
    assert proc.returncode == 0  # a platform nobody asked for does not fail doctor
