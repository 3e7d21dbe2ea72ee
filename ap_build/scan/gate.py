"""The scan use case: run Trivy once over the image, gather ignores, apply the policy.

Side effects live here (Trivy subprocess, reading ignore files); the decisions are made by the pure
`policy.evaluate`.

Image input:
- an archive path (`docker save` / OCI layout tar): Trivy reads it with `--input`;
- otherwise an engine image reference: Trivy reads it through the engine's Docker API
  (`--image-src docker`, never a registry), which reuses Trivy's layer cache instead of exporting
  the whole image on every scan.

Everything the gate needs comes from that ONE Trivy report, including the base image's ignore list:
it travels in the image config as the label `BASE_TRIVYIGNORE_LABEL` (inherited by `FROM`), which
Trivy's report carries in `Metadata.ImageConfig`. ap-build itself looks at the input (the archive,
or the engine) only when Trivy fails, to say why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ap_build.errors import ToolError, UsageError
from ap_build.platform import BASE_TRIVYIGNORE_LABEL
from ap_build.scan.ignores import IgnoreEntry, Problem, discover_ignore_files, load_ignore_file, parse_label_ignores
from ap_build.scan.policy import Policy, Verdict, evaluate
from ap_build.scan.trivy import Source, TrivyOptions, sbom_source, scan_source

BASE_IGNORES_SOURCE = f"label:{BASE_TRIVYIGNORE_LABEL}"


@dataclass
class ScanResult:
    verdict: Verdict
    artifact: dict[str, Any]
    report: dict[str, Any]
    comparison: Any = None  # ap_build.scan.compare.Comparison, with `scan --compare`


def image_labels(report: dict[str, Any]) -> dict[str, str]:
    """The scanned image's labels, from Trivy's report (pure)."""
    config = ((report.get("Metadata") or {}).get("ImageConfig") or {}).get("config") or {}
    return dict(config.get("Labels") or {})


def inherited_ignores(labels: dict[str, str]) -> tuple[list[IgnoreEntry], list[Problem]] | None:
    """The ignore list the base image carries in its label (None if it carries none) (pure).

    The label holds the `.trivyignore` format or Grype's YAML (a top-level `ignore:` list)."""
    text = labels.get(BASE_TRIVYIGNORE_LABEL)
    return None if text is None else parse_label_ignores(text, BASE_IGNORES_SOURCE)


def repo_ignores(ignore_files: list[Path] | None, workdir: Path) -> tuple[list[IgnoreEntry], list[Problem], list[str]]:
    """The repository's ignore files: those given, or those found in `workdir`."""
    entries: list[IgnoreEntry] = []
    problems: list[Problem] = []
    files = ignore_files if ignore_files is not None else discover_ignore_files(workdir)
    for f in files:
        e, p = load_ignore_file(f)
        entries += e
        problems += p
    return entries, problems, [str(f) for f in files]


def image_source(image: str, engine: Any = None) -> Source:
    """What Trivy reads: the archive at `image`, or the engine image `image` (on $DOCKER_HOST or discovered)."""
    path = Path(image)
    if path.is_file():
        return Source(archive=path.resolve())
    if image.startswith(("/", "./", "../")) or (image.endswith(".tar") and ":" not in image):  # a path, not a ref
        raise UsageError(f"{image}: no such image archive", hint="pass an archive that exists, or an image reference")
    host = engine.host if engine is not None else os.environ.get("DOCKER_HOST")
    if host is None:  # no DOCKER_HOST: find the engine, then tell Trivy where it is
        from ap_build.engine import Engine

        host = Engine.connect().host
    return Source(image=image, docker_host=host)


def explain_input(source: Source, engine: Any = None) -> None:
    """After Trivy failed: raise the clearer error if the input itself is wrong (not an archive, no such image)."""
    if source.archive is not None:
        from ap_build.scan.archive import open_archive

        open_archive(source.archive)  # UsageError for a file that is not an image archive
        return
    from ap_build.engine import Engine

    (engine or Engine.connect(source.docker_host)).inspect(str(source.image))  # EngineError if it is not there


def scan(
    image: str,
    policy: Policy,
    opts: TrivyOptions,
    *,
    ignore_files: list[Path] | None = None,
    workdir: Path | None = None,
    base_ignores: bool = True,
    engine: Any = None,
) -> ScanResult:
    """Scan `image` (engine reference or archive path) and return the verdict; raises ApBuildError (exit 2)."""
    # Read the repository's ignore files first: a broken --ignore-file fails before the (slow) scan.
    entries, problems, sources = repo_ignores(ignore_files, workdir or Path.cwd())
    if opts.vex:
        from ap_build.scan.vex import check_vex_file

        for v in opts.vex:
            check_vex_file(v)
    source = image_source(image, engine)
    try:
        report = scan_source(source, opts)
    except ToolError:
        explain_input(source, engine)
        raise
    inherited = inherited_ignores(image_labels(report)) if base_ignores else None
    if inherited is not None:  # concatenated after the repository's own entries, as the platform does
        entries, problems = entries + inherited[0], problems + inherited[1]
        sources.append(BASE_IGNORES_SOURCE)
    verdict = evaluate(report, entries, policy, problems)
    meta = report.get("Metadata") or {}
    os_info = meta.get("OS") or {}
    artifact = {
        "name": image,
        "type": "archive" if source.archive is not None else "engine-image",
        "image_id": meta.get("ImageID", ""),
        "repo_tags": meta.get("RepoTags") or [],
        "os": f"{os_info.get('Family', '')} {os_info.get('Name', '')}".strip(),
        "trivy_version": (report.get("Trivy") or {}).get("Version", ""),
        "ignore_sources": sources,
        "skip_dirs": list(opts.skip_dirs),
        "secrets_scanned": opts.secrets,
        "vex": [str(v) for v in opts.vex],
    }
    return ScanResult(verdict, artifact, report)


def scan_compare(image: str, other: str, policy: Policy, opts: TrivyOptions, **kwargs: Any) -> ScanResult:
    """Scan `image` and `other` (one Trivy run each, with the package inventory) and compare them."""
    from dataclasses import replace

    from ap_build.scan.compare import compare

    opts = replace(opts, list_packages=True)
    new = scan(image, policy, opts, **kwargs)
    old = scan(other, policy, opts, **kwargs)
    new.comparison = compare(image, new.verdict.findings, new.report, other, old.verdict.findings, old.report)
    return new


def sbom(image: str, fmt: str, output: Path, opts: TrivyOptions, *, engine: Any = None) -> Path:
    """Write the SBOM (CycloneDX or SPDX JSON) of `image` (engine reference or archive path) to `output`."""
    source = image_source(image, engine)
    try:
        sbom_source(source, fmt, opts, output)
    except ToolError:
        explain_input(source, engine)
        raise
    return output
