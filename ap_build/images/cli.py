"""`ap-build image build|test|push|render`: the runtime base images."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ap_build.errors import EXIT_FAILED, UsageError
from ap_build.platform import RUNTIMES
from ap_build.ui import err, out, print_json, status, styled

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


def _spec(runtime: str, version: str, base: str, cuda_version: str, sources: str,
          source_overrides: dict[str, str | None]):
    from ap_build.images import build as builder
    from ap_build.images.spec import load_sources, load_spec

    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}", hint=f"choose one of: {', '.join(RUNTIMES)}")
    src = load_sources(sources, {k: v for k, v in source_overrides.items() if v is not None})
    revision, commit_time = builder.git_revision()
    return load_spec(runtime, version=version, base=base, sources=src, cuda_version=cuda_version,
                     revision=revision, created=builder.created_timestamp(commit_time))


@image_app.command("build")
def build_cmd(
    runtime: str = typer.Argument(..., help=RUNTIME_HELP),
    tag: str = typer.Option(None, "--tag", "-t", help="Tag [default: localhost/ap-build/<runtime>-base:<version>]."),
    version: str = typer.Option("0.0.0-dev", "--version", help="Image version (AIRFLOW_RUNTIME_VERSION, OCI label)."),
    cuda_version: str = typer.Option("default", "--cuda-version", help="CUDA version, or 'none'."),
    base: str = typer.Option("auto", "--base", help="auto | bootstrap | NAME:TAG@sha256:DIGEST."),
    sources: str = typer.Option("upstream", "--sources", help="Source profile (images/sources.toml) or a .toml file."),
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
    report: Path = typer.Option(None, "--report", help="Write the build report (JSON) here."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the Dockerfile and exit (no engine needed)."),
    json_out: bool = typer.Option(False, "--json", help="Print the build report as JSON on stdout."),
    ignore_file: Path = typer.Option(None, "--ignore-file", help="The base's ignore list for its label (.trivyignore "
                                     "or .grype.yaml) [default: this repository's .trivyignore]."),
) -> None:
    """Build the runtime base image that meets the platform's contract."""
    from ap_build.engine import Engine
    from ap_build.images import build as builder
    from ap_build.images.base import spec_for as bootstrap_spec_for
    from ap_build.images.render import build_context

    overrides = {"aws_cli": aws_cli, "cuda": cuda_source, "r": r_source, "apt_mirror": apt_mirror,
                 "pypi_index": pypi_index, "ca_bundle": ca_bundle,
                 "aws_cli_url": aws_cli_url, "aws_cli_key": aws_cli_key, "aws_cli_fingerprint": aws_cli_fingerprint}
    if dry_run:  # no engine: `auto` is shown as the upstream base, `bootstrap` as its local reference
        from ap_build.images.base import BootstrapSpec

        shown = {"auto": builder.UPSTREAM_BASE, "bootstrap": BootstrapSpec().ref}.get(base, base)
        spec = _spec(runtime, version, shown, cuda_version, sources, overrides)
        ca = Path(spec.sources.ca_bundle) if spec.sources.ca_bundle else None
        ctx = build_context(spec, ca_bundle=b"" if ca else None, trivyignore="")
        out.print(ctx.dockerfile, markup=False)
        return
    engine = Engine.connect()
    tag = tag or f"localhost/ap-build/{runtime}-base:{version}"
    with _Progress(f"building {tag}") as progress:
        boot = bootstrap_spec_for(apt_mirror or "", snapshot or "", os.environ.get("SOURCE_DATE_EPOCH", ""))
        resolved = builder.resolve_base(engine, base, on_line=progress.line, bootstrap_spec=boot)
        spec = _spec(runtime, version, resolved, cuda_version, sources, overrides)
        ca = Path(spec.sources.ca_bundle) if spec.sources.ca_bundle else None
        result = builder.build_image(engine, spec, tag, ca_bundle=ca, nocache=nocache, on_line=progress.line,
                                     trivyignore=ignore_file)
    if report:
        report.write_text(result.to_json() + "\n")
    if json_out:
        print_json(result.__dict__)
        return
    out.print(styled(("built", "green"), f" {tag} ({result.image_id[:19]}, {result.size_bytes / 1e6:.0f} MB, "
                     f"{result.build_seconds:.1f} s) from {result.base}"))
    for name, value in sorted(result.components.items()):
        out.print(f"  {name:<8} {value}")


@image_app.command("test")
def test_cmd(
    image: str = typer.Argument(..., help="Image to test (a reference in the engine)."),
    runtime: str = typer.Option(None, help="Runtime contract to apply [default: the image's AIRFLOW_RUNTIME]."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable result."),
) -> None:
    """Run the contract: the structure-test config in images/<runtime>/ and the testinfra suite."""
    from ap_build.engine import Engine
    from ap_build.images.contract import run_contract

    engine = Engine.connect()
    with status(f"testing {image} against the runtime contract"):
        result = run_contract(engine, image, runtime)
    if json_out:
        print_json(result.to_dict())
    else:
        for line in result.summary_lines():
            out.print(line)
    if not result.passed:
        raise typer.Exit(EXIT_FAILED)


@image_app.command("push")
def push_cmd(
    image: str = typer.Argument(..., help="Local image to push."),
    target: str = typer.Argument(..., help="REGISTRY/NAME:TAG to push to."),
    report: Path = typer.Option(None, "--report", help="Add the digest to this build report (JSON)."),
) -> None:
    """Push IMAGE as TARGET and print the digest reference that downstream Dockerfiles pin."""
    from ap_build.engine import Engine
    from ap_build.images import build as builder

    engine = Engine.connect()
    with status(f"pushing {target}"):
        pinned = builder.push_image(engine, image, target)
    if report and report.is_file():
        import json

        data = json.loads(report.read_text())
        data["digest"] = pinned.split("@", 1)[1]
        data.setdefault("pushed", []).append(pinned)
        tmp = report.with_suffix(report.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(report)
    out.print(pinned, markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(image_app, name="image")
