"""The scan use case: run Trivy once over the image, gather ignores, apply the policy.

Side effects live here (engine, Trivy subprocess, reading ignore files); the decisions are made by
the pure `policy.evaluate`.

Image input:
- an archive path (`docker save` / OCI layout tar): Trivy reads it with `--input`;
- otherwise an engine image reference: Trivy reads it through the engine's Docker API
  (`--image-src docker`, never a registry), which reuses Trivy's layer cache instead of exporting
  the whole image on every scan.

The base image's ignore list is read from the scanned image itself (the file the label
`BASE_TRIVYIGNORE_LABEL` names; labels are inherited by `FROM`), concurrently with the Trivy run:
from the archive's layers, or from a created (never started) container via the engine's archive API.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ap_build.errors import ToolError
from ap_build.platform import BASE_TRIVYIGNORE_LABEL
from ap_build.scan import archive as archive_mod
from ap_build.scan.ignores import IgnoreEntry, Problem, discover_ignore_files, load_ignore_file, parse_trivyignore
from ap_build.scan.policy import Policy, Verdict, evaluate
from ap_build.scan.trivy import Source, TrivyOptions, sbom_source, scan_source

ImageIgnores = tuple[list[IgnoreEntry], list[Problem], str | None]


@dataclass
class ScanResult:
    verdict: Verdict
    artifact: dict[str, Any]
    report: dict[str, Any]
    ignore_sources: list[str] = field(default_factory=list)


def _parse_image_list(data: bytes | None, path: str) -> ImageIgnores:
    if data is None:
        return [], [], None
    source = f"image:{path}"
    entries, problems = parse_trivyignore(data.decode("utf-8", errors="replace"), source)
    return entries, problems, source


def archive_ignores(arch: archive_mod.ImageArchive) -> ImageIgnores:
    """The base image's ignore list inside an image archive (only if the image carries the label)."""
    path = arch.labels.get(BASE_TRIVYIGNORE_LABEL)
    if not path:
        return [], [], None
    return _parse_image_list(archive_mod.read_file(arch, path), path)


def engine_file(engine: Any, image: str, path: str) -> bytes | None:
    """One file of an engine image, via a created (not started) container's archive API; None if absent."""
    import docker.errors

    from ap_build.errors import EngineError

    try:
        cid = engine.api.create_container(image, command=["true"], entrypoint=[])["Id"]
    except docker.errors.APIError as exc:
        raise EngineError(f"cannot read {path} from {image}: {exc.explanation or exc}") from exc
    try:
        stream, _stat = engine.api.get_archive(cid, path)
        data = b"".join(stream)
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        raise EngineError(f"cannot read {path} from {image}: {exc.explanation or exc}") from exc
    finally:
        with contextlib.suppress(docker.errors.APIError):
            engine.api.remove_container(cid, force=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = next((m for m in tar if m.isfile()), None)
        fh = tar.extractfile(member) if member else None
        return fh.read() if fh else None


def engine_ignores(engine: Any, image: str, labels: dict[str, str]) -> ImageIgnores:
    """The base image's ignore list inside an engine image (only if the image carries the label)."""
    path = labels.get(BASE_TRIVYIGNORE_LABEL)
    if not path:
        return [], [], None
    return _parse_image_list(engine_file(engine, image, path), path)


def _inspect_quickly(image: str) -> tuple[Any, dict[str, Any]]:
    """(engine, inspect) for $DOCKER_HOST without the API version negotiation (0.3-0.5 s on Podman).

    Pins API 1.41 (Podman 4+, Docker up to 28); anything unexpected falls back to `Engine.connect()`.
    """
    import docker
    import docker.errors
    import requests.exceptions

    from ap_build.engine import Engine

    host = os.environ["DOCKER_HOST"]
    try:
        engine = Engine(docker.DockerClient(base_url=host, version="1.41", timeout=600), host)
        return engine, engine.api.inspect_image(image)
    except docker.errors.ImageNotFound:
        return engine, engine.inspect(image)  # raises the engine layer's "not found" EngineError
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        engine = Engine.connect()
        return engine, engine.inspect(image)


def _engine_side(engine: Any, image: str, base_ignores: bool) -> tuple[Any, dict[str, Any], ImageIgnores | None]:
    """Connect (if needed), inspect the image, read its inherited ignore list: (engine, inspect, ignores)."""
    if engine is None and os.environ.get("DOCKER_HOST"):
        engine, info = _inspect_quickly(image)
    else:
        if engine is None:
            from ap_build.engine import Engine

            engine = Engine.connect()
        info = engine.inspect(image)  # EngineError with a hint if the image is not there
    labels = (info.get("Config") or {}).get("Labels") or {}
    return engine, info, engine_ignores(engine, image, labels) if base_ignores else None


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
    path = Path(image)
    with ThreadPoolExecutor(max_workers=1) as pool:
        if path.is_file():
            kind = "archive"
            arch = archive_mod.open_archive(path)
            pending = pool.submit(archive_ignores, arch) if base_ignores else None
            report = scan_source(Source(archive=path.resolve()), opts)
            tags = arch.repo_tags
            image_list = pending.result() if pending is not None else None
        else:
            kind = "engine-image"
            host = engine.host if engine is not None else os.environ.get("DOCKER_HOST")
            # The engine side (connect, inspect, base ignores) runs while Trivy scans: each engine round
            # trip costs ~0.1-0.2 s on Podman, which would otherwise add up before Trivy even starts.
            side = pool.submit(_engine_side, engine, image, base_ignores)
            if host is None:  # no DOCKER_HOST: discover the engine first, then tell Trivy where it is
                host = side.result()[0].host
            try:
                report = scan_source(Source(image=image, docker_host=host), opts)
            except ToolError:
                side.result()  # an EngineError (no engine, no such image) explains it better than Trivy
                raise
            _engine, info, image_list = side.result()
            tags = info.get("RepoTags") or []
    if image_list is not None:  # concatenated after the repository's own entries, as the platform does
        e, p, src = image_list
        entries, problems = entries + e, problems + p
        if src:
            sources.append(src)
    verdict = evaluate(report, entries, policy, problems)
    meta = report.get("Metadata") or {}
    os_info = meta.get("OS") or {}
    artifact = {
        "name": image,
        "type": kind,
        "image_id": meta.get("ImageID", ""),
        "repo_tags": meta.get("RepoTags") or tags,
        "os": f"{os_info.get('Family', '')} {os_info.get('Name', '')}".strip(),
        "trivy_version": (report.get("Trivy") or {}).get("Version", ""),
        "ignore_sources": sources,
        "skip_dirs": list(opts.skip_dirs),
        "secrets_scanned": opts.secrets,
    }
    return ScanResult(verdict, artifact, report, sources)


def sbom(image: str, fmt: str, output: Path, opts: TrivyOptions, *, engine: Any = None) -> Path:
    """Write the SBOM (CycloneDX or SPDX JSON) of `image` (engine reference or archive path) to `output`."""
    path = Path(image)
    if path.is_file():
        archive_mod.open_archive(path)  # a clear UsageError for a file that is not an image archive
        source = Source(archive=path.resolve())
    else:
        if engine is None:
            from ap_build.engine import Engine

            engine = Engine.connect()
        engine.inspect(image)
        source = Source(image=image, docker_host=engine.host)
    sbom_source(source, fmt, opts, output)
    return output
