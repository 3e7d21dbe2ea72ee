"""Unit tests of multi-platform builds' pure half: the recipe resolved per architecture (AWS CLI zip, CUDA,
wheel hashes), emulation support read from binfmt_misc, the build plan and the combined report."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from ap_build.errors import UsageError
from ap_build.images import multiarch
from ap_build.images.arch import lock_lines
from ap_build.images.base import BootstrapSpec
from ap_build.images.build import BuildReport
from ap_build.images.emulation import Handler, Support, judge, parse_handler
from ap_build.images.pipeline import BuildRequest, external_parameters
from ap_build.images.platforms import AMD64, ARM64
from ap_build.images.rebuild import request_from
from ap_build.images.render import render_dockerfile, wheels
from ap_build.images.spec import load_sources, load_spec
from ap_build.resources import data_dir


def spec(target=AMD64, runtime: str = "python", profile: str = "upstream", suite: str | None = None,
         cuda_version: str = "default", **over: str):
    return load_spec(runtime, version="1.2.3", base="example/base:1@sha256:" + "0" * 64,
                     sources=load_sources(profile, over, environ={}), cuda_version=cuda_version,
                     revision="abc123", created="2025-01-01T00:00:00Z", suite=suite, platform=target)


# --- the recipe per architecture -------------------------------------------------------------------------

def test_amd64_resolves_to_the_x86_64_downloads_as_before() -> None:
    s = spec(AMD64, suite="noble")
    assert s.sources.aws_cli_url == "https://awscli.amazonaws.com/awscli-exe-linux-x86_64-{version}.zip"
    assert s.sources.nvidia_repo.endswith("/repos/{distro}/x86_64") and s.sources.cuda == "nvidia"
    text = render_dockerfile(s)
    assert "awscli-exe-linux-x86_64-2." in text and "/targets/x86_64-linux/lib" in text and not s.notes


def test_arm64_takes_the_aarch64_zip_with_the_same_signature_check() -> None:
    amd, arm = (render_dockerfile(spec(p, suite="noble", cuda_version="none")) for p in (AMD64, ARM64))
    assert re.search(r"awscli-exe-linux-aarch64-[0-9.]+\.zip\.sig", arm)
    assert "x86_64" not in arm
    gpg = [ln for ln in amd.splitlines() if "gpg" in ln]  # the key, its pinned fingerprint and gpgv: unchanged
    assert len(gpg) >= 4 and gpg == [ln for ln in arm.splitlines() if "gpg" in ln]


def test_arm64_cuda_from_nvidias_sbsa_repository_where_it_ships_it() -> None:
    s = spec(ARM64, suite="noble")
    assert s.sources.cuda == "nvidia" and s.sources.nvidia_repo.endswith("/{distro}/sbsa") and not s.notes
    text = render_dockerfile(s)
    assert "/sbsa/3bf863cc.pub" in text and "/targets/sbsa-linux/lib" in text and "cuda-cudart-13-0" in text


def test_arm64_cuda_from_the_aarch64_wheel_elsewhere() -> None:
    s = spec(ARM64, suite="trixie")
    assert s.sources.cuda == "pypi" and "no sbsa packages for trixie" in s.notes[0]
    assert any(line.startswith("nvidia-cuda-runtime==13.0.96 ") for line in wheels(s))
    assert spec(ARM64, suite="trixie", cuda_version="none").notes == ()  # no CUDA: nothing to switch


def test_an_aws_cli_url_without_machine_cannot_serve_arm64() -> None:
    url = "http://127.0.0.1:9/awscli-exe-linux-x86_64-{version}.zip"
    assert spec(AMD64, aws_cli_url=url).sources.aws_cli_url == url  # amd64: as before
    with pytest.raises(UsageError, match=r"has no \{machine\}"):
        spec(ARM64, aws_cli_url=url)
    assert spec(ARM64, aws_cli_url=url, aws_cli="debian").sources.aws_cli == "debian"  # not downloaded: fine


@pytest.mark.parametrize("target", [AMD64, ARM64])
@pytest.mark.parametrize(("runtime", "profile", "cuda"), [("python", "debian", "pypi"), ("python", "upstream", "pypi"),
                                                          ("r", "debian", "pypi")])
def test_every_wheel_is_pinned_for_both_architectures(target, runtime: str, profile: str, cuda: str) -> None:
    for version in ("13.0", "12.9"):
        lines = wheels(spec(target, runtime, profile, cuda_version=version, cuda=cuda))
        assert lines and all(" ; " not in ln and ln.count("--hash=sha256:") == 1 for ln in lines)


def test_arch_specific_wheels_have_their_own_hashes_and_amd64_lines_are_unchanged() -> None:
    text = (data_dir("images") / "common" / "wheels.lock").read_text()
    amd, arm = lock_lines(text, AMD64), lock_lines(text, ARM64)
    uv_amd, uv_arm = (next(ln for ln in lines if ln.startswith("uv==")) for lines in (amd, arm))
    assert uv_amd == "uv==0.13.9 --hash=sha256:d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19"
    assert uv_arm.startswith("uv==0.13.9 --hash=sha256:") and uv_arm != uv_amd
    assert [ln for ln in amd if ln.startswith("pip==")] == [ln for ln in arm if ln.startswith("pip==")]
    assert len(amd) == len(arm)


# --- the bootstrapped base per architecture -------------------------------------------------------------

def test_the_native_base_keeps_its_name_and_arm64_gets_its_own_key() -> None:
    native = BootstrapSpec.default()
    arm = replace(native, platform=ARM64)
    assert re.fullmatch(r"localhost/ap-build/debian:trixie-[0-9a-f]{12}", native.ref)
    assert re.fullmatch(r"localhost/ap-build/debian:trixie-arm64-[0-9a-f]{12}", arm.ref)
    assert arm.ref.rsplit("-", 1)[1] != native.ref.rsplit("-", 1)[1]
    assert replace(arm, variant="extract").ref != arm.ref


# --- emulation (binfmt_misc) ----------------------------------------------------------------------------

HANDLER = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: PF
offset 0
magic 7f454c460201010000000000000000000200b700
"""


def test_parse_handler() -> None:
    assert parse_handler(HANDLER) == Handler(True, "/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "PF")
    assert not parse_handler("disabled\ninterpreter /x\nflags: F\n").enabled


@pytest.mark.parametrize(("handler", "mounted", "arch_test", "exists", "how", "needle"), [
    (parse_handler(HANDLER), True, True, True, "emulated", "aarch64-binfmt-P (flags PF)"),
    (None, False, True, True, "none", "not mounted"),
    (None, True, True, True, "none", "no binfmt_misc handler qemu-aarch64"),
    (parse_handler("disabled\ninterpreter /x\nflags: F\n"), True, True, True, "none", "disabled"),
    (parse_handler(HANDLER), True, True, False, "none", "is missing"),
    (parse_handler("enabled\ninterpreter /x\nflags: P\n"), True, True, True, "none", "F (fix-binary)"),
    (parse_handler(HANDLER), True, False, True, "none", "arch-test"),
])
def test_judge(handler, mounted: bool, arch_test: bool, exists: bool, how: str, needle: str) -> None:
    got = judge(ARM64, AMD64, handler, mounted=mounted, arch_test=arch_test, interpreter_exists=exists)
    assert got.how == how and needle in got.detail
    assert got.ok == (how == "emulated")
    if how == "none":
        assert "update-binfmts --enable qemu-aarch64" in got.fix or "arch-test" in got.fix
    assert judge(AMD64, AMD64, None, mounted=False, arch_test=False, interpreter_exists=False).how == "native"


# --- the multi-platform build's plan and report -------------------------------------------------------------

def report(platform: str, image_id: str, tag: str) -> BuildReport:
    return BuildReport(runtime="python", tag=tag, version="1", image_id=image_id, size_bytes=10, base="b",
                       base_id="sha256:b", sources="debian", suite="trixie", cuda_version=None,
                       components={"python": "3.13"}, build_seconds=1.0, created="", revision="", platform=platform)


def test_plan_tags_each_platform_and_says_how_it_runs() -> None:
    supports = {AMD64: Support(AMD64, "native", ""), ARM64: Support(ARM64, "emulated", "", interpreter="/q")}
    steps = multiarch.plan((AMD64, ARM64), "reg/x:1", supports)
    assert [(s.platform, s.tag) for s in steps] == [(AMD64, "reg/x:1-amd64"), (ARM64, "reg/x:1-arm64")]
    assert steps[1].line == "linux/arm64: building reg/x:1-arm64 under emulation (/q)"
    assert multiarch.side_report(Path("out/r.json"), ARM64) == Path("out/r-arm64.json")


def test_combine_puts_the_hosts_image_at_the_top_and_lists_every_platform() -> None:
    results = {AMD64: report("linux/amd64", "sha256:a", "x:1-amd64"),
               ARM64: report("linux/arm64", "sha256:b", "x:1-arm64")}
    both = multiarch.combine(results, "x:1", AMD64)
    assert (both.tag, both.image_id, both.platform) == ("x:1", "sha256:a", "linux/amd64")
    assert [(e["platform"], e["image_id"], e["tag"]) for e in both.platforms] == [
        ("linux/amd64", "sha256:a", "x:1-amd64"), ("linux/arm64", "sha256:b", "x:1-arm64")]
    only_arm = multiarch.combine({ARM64: results[ARM64]}, "x:1", AMD64)
    assert (only_arm.tag, only_arm.image_id) == ("x:1-arm64", "sha256:b")  # the plain tag is the host's only


# --- the request: parameters and provenance -------------------------------------------------------------------

def test_the_platform_is_an_external_parameter_and_a_rebuild_keeps_it() -> None:
    assert external_parameters(BuildRequest(runtime="python"))["platform"] == ""  # this machine's
    arm = external_parameters(BuildRequest(runtime="python", platform="linux/arm64"))
    assert arm["platform"] == "linux/arm64"
    stmt = {"predicate": {"buildDefinition": {"externalParameters": arm}}}
    assert request_from(stmt, "x:1").platform == "linux/arm64"  # a rebuild builds that platform again


def test_unsupported_platforms_are_refused_before_anything() -> None:
    with pytest.raises(UsageError, match="unsupported platform"):
        BuildRequest(runtime="python", platform="linux/amd64,linux/s390x").platforms()
