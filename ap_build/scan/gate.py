"""The scan use case: resolve the image to an archive, run Trivy once, gather ignores, apply the policy.

Side effects live here (engine save, Trivy subprocess, reading ignore files); the decisions are made by
the pure `policy.evaluate`.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ap_build.platform import BASE_TRIVYIGNORE_LABEL, BASE_TRIVYIGNORE_PATH
from ap_build.scan import archive as archive_mod
from ap_build.scan.ignores import IgnoreEntry, Problem, discover_ignore_files, load_ignore_file, parse_trivyignore
from ap_build.scan.policy import Policy, Verdict, evaluate
from ap_build.scan.trivy import TrivyOptions, sbom_archive, scan_archive


@dataclass
class ScanResult:
    verdict: Verdict
    artifact: dict[str, Any]
    report: dict[str, Any]
    ignore_sources: list[str] = field(default_factory=list)


@contextlib.contextmanager
def image_archive(image: str, engine: Any = None) -> Iterator[tuple[Path, str]]:
    """Yield (archive path, kind) for `image`: an existing archive file as is, else `engine.save` to a temp file."""
    path = Path(image)
    if path.is_file():
        yield path, "archive"
        return
    if engine is None:
        from ap_build.engine import Engine

        engine = Engine.connect()
    engine.inspect(image)  # EngineError with a hint if the image is not there
    with tempfile.TemporaryDirectory(prefix="ap-build-scan-") as tmp:
        yield engine.save(image, Path(tmp) / "image.tar"), "engine-image"


def image_ignores(arch: archive_mod.ImageArchive) -> tuple[list[IgnoreEntry], list[Problem], str | None]:
    """The base image's ignore list carried inside the scanned image (label -> path, else the fixed path)."""
    path = arch.labels.get(BASE_TRIVYIGNORE_LABEL) or BASE_TRIVYIGNORE_PATH
    data = archive_mod.read_file(arch, path)
    if data is None:
        return [], [], None
    source = f"image:{path}"
    entries, problems = parse_trivyignore(data.decode("utf-8", errors="replace"), source)
    return entries, problems, source


def collect_ignores(
    ignore_files: list[Path] | None, workdir: Path, arch: archive_mod.ImageArchive | None
) -> tuple[list[IgnoreEntry], list[Problem], list[str]]:
    """Repository ignore files (given, or found in `workdir`) concatenated with the image's inherited list."""
    entries: list[IgnoreEntry] = []
    problems: list[Problem] = []
    sources: list[str] = []
    files = ignore_files if ignore_files is not None else discover_ignore_files(workdir)
    for f in files:
        e, p = load_ignore_file(f)
        entries += e
        problems += p
        sources.append(str(f))
    if arch is not None:
        e, p, src = image_ignores(arch)
        entries += e
        problems += p
        if src:
            sources.append(src)
    return entries, problems, sources


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
    workdir = workdir or Path.cwd()
    # Read the ignore files first: a broken --ignore-file fails before the (slow) scan.
    if ignore_files is not None:
        for f in ignore_files:
            load_ignore_file(f)
    with image_archive(image, engine) as (path, kind):
        arch = archive_mod.open_archive(path)
        report = scan_archive(path, opts)
        entries, problems, sources = collect_ignores(ignore_files, workdir, arch if base_ignores else None)
    verdict = evaluate(report, entries, policy, problems)
    meta = report.get("Metadata") or {}
    os_info = meta.get("OS") or {}
    artifact = {
        "name": image,
        "type": kind,
        "image_id": meta.get("ImageID", ""),
        "repo_tags": meta.get("RepoTags") or arch.repo_tags,
        "os": f"{os_info.get('Family', '')} {os_info.get('Name', '')}".strip(),
        "trivy_version": (report.get("Trivy") or {}).get("Version", ""),
        "ignore_sources": sources,
    }
    return ScanResult(verdict, artifact, report, sources)


def sbom(image: str, fmt: str, output: Path, opts: TrivyOptions, *, engine: Any = None) -> Path:
    """Write the SBOM (CycloneDX or SPDX JSON) of `image` to `output`."""
    with image_archive(image, engine) as (path, _kind):
        sbom_archive(path, fmt, opts, output)
    return output
