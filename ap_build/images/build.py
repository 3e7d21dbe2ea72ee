"""Build and push runtime images through the engine; write the build report.

The side-effect half of `ap-build image`: render the context (pure, `render.py`), build untagged, tag
only on success, probe the components, push and report the digest. `pipeline.build` puts it together.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ap_build.engine import Engine
from ap_build.errors import EngineError, UsageError
from ap_build.images.render import build_context
from ap_build.images.spec import ImageSpec, parse_epoch
from ap_build.resources import base_trivyignore, data_dir, read_cache, write_cache

# One throw-away container prints every component version (jupyter/docker-stacks style).
_PROBE = r"""
v() { printf '%s=%s\n' "$1" "$(eval "$2" 2>/dev/null | head -n1 | tr -d '\r')"; }
v os "grep '^PRETTY_NAME=' /etc/os-release | cut -d= -f2 | tr -d '\"'"
v python "python3 --version 2>&1 | cut -d' ' -f2"
v pip "python3 -m pip --version | cut -d' ' -f2"
v uv "uv --version | cut -d' ' -f2"
v aws_cli "aws --version 2>&1 | sed -E 's|^aws-cli/([^ ]+).*|\1|'"
v r "R --version | sed -E 's/^R version ([^ ]+).*/\1/'"
v cudart "ldconfig -p | grep -o 'libcudart\.so\.[0-9.]*' | sort -u | tr '\n' ' '"
"""


@dataclass
class BuildReport:
    runtime: str
    tag: str
    version: str
    image_id: str
    size_bytes: int
    base: str
    base_id: str
    sources: str
    suite: str
    cuda_version: str | None
    components: dict[str, str]
    build_seconds: float
    created: str
    revision: str
    digest: str | None = None
    pushed: list[str] = field(default_factory=list)
    platform: str = ""  # the image's platform (`linux/arm64`)
    platforms: list[dict[str, object]] = field(default_factory=list)  # each platform of a multi-platform build

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def git_revision(path: Path | None = None) -> tuple[str, str]:
    """(commit SHA, commit time ISO) of the ap-build checkout, or ('', '') outside git."""
    cwd = path or data_dir("images").parent
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%H %cI"], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=True).stdout.split()
        return out[0], out[1]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "", ""


def created_timestamp(commit_time: str) -> str:
    """SOURCE_DATE_EPOCH, else the commit time (so an unchanged rebuild is fully cached), else now."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        ts = dt.datetime.fromtimestamp(parse_epoch(os.environ["SOURCE_DATE_EPOCH"]), dt.UTC)
        return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    if commit_time:
        return dt.datetime.fromisoformat(commit_time).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_image(
    engine: Engine,
    spec: ImageSpec,
    tag: str,
    *,
    ca_bundle: Path | None = None,
    trivyignore: Path | None = None,
    nocache: bool = False,
    on_line: Callable[[str], None] | None = None,
    platform: str | None = None,
    timestamp: int | None = None,
) -> BuildReport:
    """Build `spec` and tag it `tag` only once the build succeeded. Returns the build report.
    `platform`: ask the engine for spec.platform explicitly (None: the engine's own, as a plain build).
    `timestamp`: the engine stamps the image and its layers' files with it, where it can (`Engine.build`)."""
    if ca_bundle is not None and not ca_bundle.is_file():
        raise UsageError(f"CA bundle {ca_bundle} does not exist", hint="fix ca_bundle in the sources settings")
    context = build_context(
        spec,
        ca_bundle=ca_bundle.read_bytes() if ca_bundle else None,
        trivyignore=read_base_ignores(trivyignore if trivyignore is not None else base_trivyignore()),
        source_date_epoch=timestamp,
    )
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ap-build-ctx-") as tmp:
        _check_disk(Path(tmp))
        context.write(Path(tmp))
        image_id = engine.build(
            Path(tmp),
            nocache=nocache,
            on_line=on_line,
            labels=context.labels,
            network_mode="host" if spec.sources.uses_loopback() else None,
            platform=platform,
            timestamp=timestamp,
        )
    engine.tag(image_id, tag)
    seconds = time.monotonic() - start
    info = engine.inspect(image_id)
    return BuildReport(
        runtime=spec.runtime, tag=tag, version=spec.version, image_id=image_id,
        size_bytes=int(info.get("Size") or 0), base=spec.base, base_id=engine.inspect(spec.base)["Id"],
        sources=spec.sources.name, suite=spec.suite, cuda_version=spec.cuda_version,
        components=probe_components(engine, image_id),
        build_seconds=round(seconds, 2), created=spec.created, revision=spec.revision,
        platform=spec.platform.name,
    )


def read_base_ignores(path: Path) -> str:
    """The ignore list a base image carries (its label); UsageError naming file:line if an entry is malformed.

    A malformed entry would otherwise reach every user image's scan as a problem nobody there can fix.
    """
    from ap_build.scan.ignores import parse_ignore_text

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the base images' ignore list ({exc})") from exc
    _entries, problems = parse_ignore_text(text, str(path))  # `.trivyignore` or Grype's `.grype.yaml`
    if problems:
        p = problems[0]
        raise UsageError(f"{p.where}: {p.message}", hint="fix the base images' ignore list before building")
    return text


def probe_components(engine: Engine, image: str) -> dict[str, str]:
    """Versions of the image's components, read from one throw-away container (cached by image ID)."""
    image_id = engine.inspect(image)["Id"]
    cache = f"components/{image_id.removeprefix('sha256:')}.json"
    if (kept := read_cache(cache)) is not None:
        with contextlib.suppress(ValueError):
            return dict(json.loads(kept))
    code, output = engine.run(image_id, ["-c", _PROBE], entrypoint=["bash"])
    if code != 0:
        raise EngineError(f"could not read component versions from {image_id[:19]}: {output.strip()[:200]}")
    found = dict(line.split("=", 1) for line in output.splitlines() if re.match(r"^[a-z_]+=", line))
    components = {k: v.strip() for k, v in found.items() if v.strip()}
    write_cache(cache, json.dumps(components))
    return components


def push_image(engine: Engine, image: str, target: str, on_line: Callable[[str], None] | None = None) -> str:
    """Tag `image` as `target`, push it and return the pinned reference `name:tag@sha256:...`."""
    if "@" in target:
        raise UsageError(f"push target {target} carries a digest", hint="give REGISTRY/NAME:TAG; the digest is printed")
    image_id = engine.inspect(image)["Id"]
    engine.tag(image_id, target)
    digest = engine.push(target, on_line=on_line)
    pinned = f"{target}@{digest}"
    if not engine.image_exists(pinned):
        # Podman records a repo digest only on pull; pulling back (layers are local) makes the
        # pinned reference resolve in this engine, as it does on Docker after a push.
        engine.pull(pinned)
    return pinned


def _check_disk(path: Path, need_bytes: int = 2 * 1024**3) -> None:
    """Fail early and clearly on a full disk rather than midway through a layer."""
    for probe in (path, Path("/var/lib/containers")):
        if probe.exists():
            st = os.statvfs(probe)
            free = st.f_bavail * st.f_frsize
            if free < need_bytes:
                raise EngineError(f"only {free // 1024**2} MiB free on {probe}; a build needs about "
                                  f"{need_bytes // 1024**2} MiB", hint="free disk space (e.g. `podman image prune`)")
