"""`ap-build image build|test|push|render`: the runtime base images."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ap_build.errors import EXIT_FAILED, UsageError
from ap_build.platform import RUNTIMES
from ap_build.ui import err, info, out, print_json, status, styled

if TYPE_CHECKING:
    from ap_build.engine import Engine
    from ap_build.images.platforms import Platform

# The engine (Docker SDK) and the recipes (Jinja) are imported inside the commands that use
# them, so that `ap-build` starts fast for every other command.

image_app = typer.Typer(help="Build, test and push the Python and R runtime base images.", no_args_is_help=True)

RUNTIME_HELP = f"Runtime: {' | '.join(RUNTIMES)}."


class _Progress:
    """A spinner whose text is the latest build line; every step line is also kept on screen."""

    def __init__(self, title: str) -> None:
        from rich.live import Live  # rich's widgets only when building: every command's start-up imports this module
        from rich.spinner import Spinner

        self.title = title
        self.live = Live(Spinner("dots", text=title), console=err, refresh_per_second=8, transient=True)

    def __enter__(self) -> _Progress:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(*exc)

    def line(self, text: str) -> None:
        from rich.spinner import Spinner
        from rich.text import Text

        text = text.rstrip()
        if text.startswith("STEP ") or text.startswith("Step "):
            err.print(Text(text, style="cyan"))
        self.live.update(Spinner("dots", text=Text(f"{self.title}: {text[:110]}")))


@image_app.command("build")
def build_cmd(
    runtime: str = typer.Argument(..., help=RUNTIME_HELP),
    tag: str = typer.Option(None, "--tag", "-t", help="Tag [default: localhost/ap-build/<runtime>-base:<version>]."),
    version: str = typer.Option("0.0.0-dev", "--version", help="Image version (AIRFLOW_RUNTIME_VERSION, OCI label)."),
    cuda_version: str = typer.Option("default", "--cuda-version", help="CUDA version, or 'none'."),
    base: str = typer.Option("auto", "--base", help="auto | bootstrap | NAME:TAG@sha256:DIGEST."),
    suite: str = typer.Option(None, "--suite", help="Debian suite of a bootstrapped base (trixie, bookworm)."),
    sources: str = typer.Option("auto", "--sources", help="auto | a profile of images/sources.toml | a .toml file."),
    aws_cli: str = typer.Option(None, "--aws-cli", help="AWS CLI source: zip | debian."),
    cuda_source: str = typer.Option(None, "--cuda-source", help="CUDA source: nvidia | pypi | debian."),
    r_source: str = typer.Option(None, "--r-source", help="R source: cran | distro."),
    apt_mirror: str = typer.Option(None, help="Override the apt mirror (also used to bootstrap a base)."),
    snapshot: str = typer.Option(None, help="Bootstrap from snapshot.debian.org at this time (20250101T000000Z)."),
    pypi_index: str = typer.Option(None, help="Override the PyPI index URL."),
    ca_bundle: str = typer.Option(None, help="CA bundle for downloads during the build (not kept in the image)."),
    aws_cli_url: str = typer.Option(None, help="Override the AWS CLI zip URL ({version} is substituted)."),
    aws_cli_key: str = typer.Option(None, help="Override the AWS CLI signing key file."),
    aws_cli_fingerprint: str = typer.Option(None, help="Fingerprint the AWS CLI key must have."),
    nocache: bool = typer.Option(False, "--no-cache", help="Build without the layer cache."),
    reproducible: bool = typer.Option(None, "--reproducible/--no-reproducible", show_default=False,
                                      help="The same inputs give the same image ID (every mtime SOURCE_DATE_EPOCH, "
                                      "the config normalised). [default: where the engine stamps its layers "
                                      "(Podman), a few seconds; --reproducible also rewrites them elsewhere]"),
    report: Path = typer.Option(None, "--report", help="Write the build report (JSON) here."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the Dockerfile and exit (no engine needed)."),
    as_json: bool = typer.Option(False, "--json", help="Print the build report as JSON on stdout."),
    ignore_file: Path = typer.Option(None, "--ignore-file", help="The base's ignore list for its label (.trivyignore "
                                     "or .grype.yaml) [default: this repository's .trivyignore]."),
    platform: str = typer.Option(None, "--platform", help="Target platforms, comma-separated (linux/amd64,"
                                 "linux/arm64): one image each, tagged TAG-<arch>, the host's also TAG "
                                 "[default: this machine's, tagged TAG]."),
) -> None:
    """Build the runtime base image that meets the platform's contract."""
    from ap_build.images import pipeline

    overrides = {"aws_cli": aws_cli, "cuda": cuda_source, "r": r_source, "apt_mirror": apt_mirror,
                 "pypi_index": pypi_index, "ca_bundle": ca_bundle,
                 "aws_cli_url": aws_cli_url, "aws_cli_key": aws_cli_key, "aws_cli_fingerprint": aws_cli_fingerprint}
    request = pipeline.BuildRequest(
        runtime=runtime, version=version, tag=tag or "", base=base, sources=sources,
        overrides={k: v for k, v in overrides.items() if v is not None}, cuda_version=cuda_version,
        suite=suite or "", snapshot=snapshot or "", nocache=nocache, ignore_file=ignore_file,
        reproducible=reproducible, platform=platform or "",
    )
    if dry_run:
        out.print(pipeline.dockerfile(request, say=_say), markup=False)
        return
    from ap_build.engine import Engine

    engine = Engine.connect()
    with _Progress(f"building {request.target}") as progress:
        def on_platform(target: object) -> None:
            progress.title = f"building {request.target} for {target}"

        result = pipeline.build(request, engine, say=_say, on_line=progress.line, report=report,
                                on_platform=on_platform)
    if as_json:
        print_json(result.__dict__)
        return
    for entry in result.platforms:
        out.print(styled(("built", "green"), f" {entry['tag']} ({str(entry['image_id'])[:19]}, {entry['platform']}, "
                         f"{int(str(entry['size_bytes'])) / 1e6:.0f} MB, {entry['build_seconds']} s) "
                         f"from {entry['base']}"), markup=False)
    if result.platforms and not any(e["tag"] == result.tag for e in result.platforms):
        out.print(f"tagged {result.tag} ({result.platform}, {result.image_id[:19]})", markup=False)
    if not result.platforms:
        out.print(styled(("built", "green"), f" {result.tag} ({result.image_id[:19]}, "
                         f"{result.size_bytes / 1e6:.0f} MB, {result.build_seconds:.1f} s) from {result.base}"))
    for name, value in sorted(result.components.items()):
        out.print(f"  {name:<8} {value}", markup=False)


def _say(line: str) -> None:
    """A decision the build made (which base, which sources, and why): one line on stderr."""
    info(line)


@image_app.command("test")
def test_cmd(
    image: str = typer.Argument(..., help="Image to test (a reference in the engine)."),
    runtime: str = typer.Option(None, help="Runtime contract to apply [default: the image's AIRFLOW_RUNTIME]."),
    platform: str = typer.Option(None, "--platform", help="Test these platforms' images (linux/amd64,linux/arm64) "
                                 "[default: every platform of a multi-platform build, else IMAGE alone]."),
    common_only: bool = typer.Option(False, "--common-only", help="Only the items every runtime shares (user, "
                                     "workdir, env, labels, AWS CLI, linker, architecture): no structure test, no "
                                     "runtime suite; quick under emulation."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable result."),
) -> None:
    """Run the contract: the structure-test config in images/<runtime>/ and the testinfra suite, on each
    platform's image of a multi-platform build (emulated where this machine is not that platform)."""
    from ap_build.engine import Engine
    from ap_build.images.contract import run_contract
    from ap_build.images.platform_images import contract_images

    only = _platforms(platform)
    engine = Engine.connect()
    images = contract_images(engine, image, only)
    if images is not None:
        _test_platforms(engine, image, images, runtime, as_json, common_only)
        return
    with status(f"testing {image} against the runtime contract"):
        result = run_contract(engine, image, runtime, common_only=common_only)
    if as_json:
        print_json(result.to_dict())
    else:
        for line in result.summary_lines():
            out.print(line)
    if not result.passed:
        raise typer.Exit(EXIT_FAILED)


def _platforms(text: str | None) -> tuple[Platform, ...] | None:
    from ap_build.images.platforms import parse_platforms

    return None if text is None else parse_platforms(text)


def _test_platforms(engine: Engine, image: str, images: dict[Platform, str], runtime: str | None,
                    as_json: bool, common_only: bool) -> None:
    """The contract on each platform's image: one result per platform; exit 1 if any fails."""
    from rich.text import Text

    from ap_build.images.platform_images import run_contracts

    with status(f"testing {image} on {', '.join(p.name for p in images)} against the runtime contract"):
        results = run_contracts(engine, images, runtime, common_only=common_only)
    passed = all(r.result.passed for r in results)
    if as_json:
        print_json({"schema_version": 1, "image": image, "passed": passed, "platforms": [r.to_dict() for r in results]})
    else:
        for r in results:
            out.print(styled((r.platform.name, "bold"), f" ({r.image}{', emulated' if r.emulated else ''})"))
            for line in r.result.summary_lines():
                out.print(Text("  ").append_text(line))
    if not passed:
        raise typer.Exit(EXIT_FAILED)


@image_app.command("push")
def push_cmd(
    image: str = typer.Argument(..., help="Local image to push (a multi-platform build: all its platforms)."),
    target: str = typer.Argument(..., help="REGISTRY/NAME:TAG to push to."),
    platform: str = typer.Option(None, "--platform", help="Of a multi-platform build, push only these platforms "
                                 "(linux/amd64,linux/arm64) [default: all it has]."),
    report: Path = typer.Option(None, "--report", help="Add the digest to this build report (JSON)."),
    sign_key: Path = typer.Option(None, "--sign-key", help="ECDSA P-256 private key (PEM): attach the signed "
                                  "provenance and SBOMs (SPDX, CycloneDX) to the pushed digest (of each platform)."),
    provenance_file: Path = typer.Option(None, "--provenance", help="The build's provenance [default: the one "
                                         "`image build` recorded for IMAGE on this machine]."),
    as_json: bool = typer.Option(False, "--json", help="Print what was pushed as JSON on stdout."),
) -> None:
    """Push IMAGE as TARGET and print the digest reference that downstream Dockerfiles pin; a multi-platform
    build is pushed as one OCI image index under TARGET's tag, with each platform's image."""
    from ap_build.engine import Engine
    from ap_build.images import build as builder
    from ap_build.images.platform_images import recorded_images, select

    only = _platforms(platform)
    if sign_key is not None:
        from ap_build.images import dsse

        dsse.load_private_key(sign_key)  # a bad key stops before anything is pushed
    engine = Engine.connect()
    record = recorded_images(engine, image)
    if record is not None:
        images = select(record, only, image)
        if provenance_file is not None:
            raise UsageError("--provenance names one image's provenance; a multi-platform push has one per platform",
                             hint="drop --provenance: each platform's own recorded provenance is used")
        _push_platforms(engine, images, target, report, sign_key, as_json)
        return
    if only is not None:
        _single_platform_matches(engine, image, only)
    with status(f"pushing {target}"):
        pinned = builder.push_image(engine, image, target)
    if report and report.is_file():
        from ap_build.images.pipeline import add_push

        add_push(report, pinned)
    attached = None
    if sign_key is not None:
        from ap_build.images.attest import PREDICATES, attest_push

        with status(f"signing and attaching attestations to {pinned.split('@')[1][:19]}"):
            attached = attest_push(engine, image, pinned, sign_key, provenance_file=provenance_file, say=_say)
        _say(f"attested: {', '.join(PREDICATES[p] for p in attached.documents)} at {attached.tag}")
    if as_json:
        print_json({"schema_version": 1, "reference": pinned, "digest": pinned.split("@")[1],
                    "attestations": attached.tag if attached else None})
        return
    out.print(pinned, markup=False)


def _single_platform_matches(engine: Engine, image: str, only: tuple[Platform, ...]) -> None:
    """`--platform` on an image that is not a multi-platform build: it must name the image's own platform."""
    from ap_build.images.platform_images import image_platform

    have = image_platform(engine.inspect(image))
    if len(only) != 1 or have != only[0]:
        raise UsageError(f"{image} is one image ({have or 'unknown platform'}), not a multi-platform build of "
                         f"{', '.join(p.name for p in only)}",
                         hint="build it with `ap-build image build ... --platform linux/amd64,linux/arm64`, "
                         "or drop --platform")


def _push_platforms(engine: Engine, images: dict[Platform, str], target: str, report: Path | None,
                    sign_key: Path | None, as_json: bool) -> None:
    """Each platform's image, then one OCI image index under TARGET's tag; attestations per platform digest."""
    from ap_build.images.platform_images import push_index

    with status(f"pushing {target} for {', '.join(p.name for p in images)}"):
        pushed = push_index(engine, images, target)
    if report and report.is_file():
        from ap_build.images.pipeline import add_push

        add_push(report, pushed.reference)
    if sign_key is not None:
        from ap_build.images.attest import attest_push

        for p in pushed.platforms:
            with status(f"signing and attaching attestations to {p.platform} ({p.digest[:19]})"):
                attached = attest_push(engine, p.image_id, p.reference, sign_key, say=_say)
            pushed.attestations[p.platform.name] = attached.tag
            _say(f"attested {p.platform}: {attached.tag}")
    if as_json:
        print_json(pushed.to_dict())
        return
    for line in pushed.summary_lines():
        info(line)
    out.print(pushed.reference, markup=False)


@image_app.command("verify")
def verify_cmd(
    image: str = typer.Argument(..., help="REGISTRY/NAME:TAG or REGISTRY/NAME@sha256:DIGEST."),
    key: Path = typer.Option(..., "--key", help="The signer's ECDSA P-256 public key (PEM)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Also build it again from the provenance alone "
                                 "(--no-cache --reproducible) and compare the digests, layer by layer."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable verdict."),
) -> None:
    """Check the image's signed provenance and SBOMs: signatures, subjects = its digest; print the provenance."""
    from ap_build.images.verify import Problem, summary_lines, verify

    verdict = verify(image, key)
    from ap_build.images.provenance import PREDICATE_TYPE

    if rebuild and verdict.platforms:
        raise UsageError(f"{image} is an index of {len(verdict.platforms)} platforms; --rebuild rebuilds one image",
                         hint="pass one platform's NAME@sha256:... (`image verify` without --rebuild lists them)")

    recorded = verdict.statements.get(PREDICATE_TYPE, {}).get("predicate", {}).get("buildDefinition", {})
    if rebuild and verdict.verified and not recorded.get("externalParameters", {}).get("reproducible"):
        verdict.problems.append(Problem("not-reproducible", "the image was built without --reproducible, so no "
                                        "rebuild can give its digest"))
    if rebuild and verdict.verified:
        from ap_build.engine import Engine
        from ap_build.images.rebuild import rebuild as rebuild_image

        engine = Engine.connect()
        with _Progress(f"rebuilding {verdict.digest[:19]} from its provenance") as progress:
            again = rebuild_image(engine, image, verdict.digest, verdict.statements[PREDICATE_TYPE], say=_say,
                                  on_line=progress.line)
        verdict.rebuild = {"image_id": again.image_id, "expected": again.expected, "same": again.same,
                           "layers_differ": again.layers_differ}
        if not again.same:
            verdict.problems.append(Problem("not-reproduced", f"the rebuild is {again.image_id}, the pushed image's "
                                            f"config is {again.expected} (layers differing: {again.layers_differ})"))
    if as_json:
        print_json(verdict.to_dict())
    else:
        for line in summary_lines(verdict):
            out.print(line, markup=False)
    if not verdict.verified:
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    app.add_typer(image_app, name="image")
