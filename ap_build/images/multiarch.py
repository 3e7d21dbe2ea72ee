"""`image build --platform linux/amd64,linux/arm64`: one local image per platform.

Each platform is built in turn through the same pipeline (`pipeline.build_for`: its own bootstrapped base and
recipe resolved for its architecture, the engine's build API with `platform=`), natively or under qemu's
emulation (`emulation.require` first: a platform this machine cannot run stops before anything is built).
Each image is tagged `<tag>-<arch>` (`platforms.platform_tag`) once built; after the last one the host's
platform is also tagged `<tag>` and the record `image push` reads is written (`platforms.record_build`).
The plan and the combined report are pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ap_build.engine import Engine
from ap_build.images import emulation
from ap_build.images.build import BuildReport
from ap_build.images.platforms import Platform, host_platform, platform_tag, record_build

Say = Callable[[str], None]
# builds one platform's image: (platform, its tag, say, its own report file or None) -> its report
OneBuild = Callable[[Platform, str, Say, Path | None], BuildReport]


@dataclass(frozen=True)
class Step:
    """One platform's build: where its image goes and how it runs here."""

    platform: Platform
    tag: str
    how: str  # native | emulated
    interpreter: str = ""

    @property
    def line(self) -> str:
        how = "natively" if self.how == "native" else f"under emulation ({self.interpreter})"
        return f"{self.platform.name}: building {self.tag} {how}"


def plan(targets: tuple[Platform, ...], tag: str, supports: dict[Platform, emulation.Support]) -> list[Step]:
    """The steps of a multi-platform build, in the order asked (pure)."""
    return [Step(p, platform_tag(tag, p), supports[p].how, supports[p].interpreter) for p in targets]


def side_report(report: Path | None, target: Platform) -> Path | None:
    """`out/build-report.json` -> `out/build-report-arm64.json`: one platform's own report (pure)."""
    if report is None:
        return None
    return report.with_name(f"{report.name.removesuffix('.json')}-{target.arch}.json")


def combine(results: dict[Platform, BuildReport], tag: str, host: Platform) -> BuildReport:
    """The report of the whole build (pure): the host's image (else the first) at the top, under `tag` if it
    is the host's, and every platform with its tag and image ID in `platforms`."""
    top_platform = host if host in results else next(iter(results))
    top = results[top_platform]
    entries: list[dict[str, object]] = [
        {"platform": p.name, "tag": r.tag, "image_id": r.image_id, "size_bytes": r.size_bytes,
         "build_seconds": r.build_seconds, "base": r.base, "base_id": r.base_id, "components": r.components}
        for p, r in results.items()
    ]
    return replace(top, tag=tag if top_platform == host else top.tag, platforms=entries)


def build_platforms(targets: tuple[Platform, ...], tag: str, engine: Engine, one: OneBuild, *, say: Say,
                    report: Path | None = None, on_platform: Callable[[Platform], None] | None = None,
                    write: Callable[[Path, BuildReport], None] | None = None) -> BuildReport:
    """Build every platform of `targets` with `one`, tag and record them; the combined report."""
    host = host_platform()
    steps = plan(targets, tag, emulation.require(targets, host))
    results: dict[Platform, BuildReport] = {}
    for step in steps:
        say(step.line)
        if on_platform is not None:
            on_platform(step.platform)

        def say_p(message: str, name: str = step.platform.name) -> None:
            say(f"{name}: {message}")

        results[step.platform] = one(step.platform, step.tag, say_p, side_report(report, step.platform))
    if host in results:
        engine.tag(results[host].image_id, tag)
    if not record_build(tag, {p: r.image_id for p, r in results.items()}):
        say(f"platforms: not recorded (ap-build cache folder not writable): `image push {tag}` cannot find them")
    combined = combine(results, tag, host)
    if report is not None and write is not None:
        write(report, combined)
    return combined
