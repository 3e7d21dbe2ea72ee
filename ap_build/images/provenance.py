"""SLSA v1 provenance of a runtime image build, as an in-toto v1 statement.

`statement(inputs)` is a pure function of the build's inputs and results (`ProvenanceInputs`);
`collect(...)` gathers those from the request, the spec, the engine and the build log (side effects:
one throw-away container for the installed package list, cached by image ID). `image build` writes the
statement beside its report and into ap-build's cache (by image ID), where `image push --sign-key`
finds it, re-subjects it to the pushed digest, signs it and attaches it (`attest.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ap_build import __version__, fsio
from ap_build.images.spec import ImageSpec
from ap_build.resources import read_cache, write_cache

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/ministryofjustice/analytical-platform-airflow-base-images/ap-build/image-build/v1"
# the build step that prints the AWS CLI zip's digest (images/common/Dockerfile.j2)
_ZIP_LINE = re.compile(r"^([0-9a-f]{64})\s+\*?/tmp/awscliv2\.zip$")


@dataclass(frozen=True)
class ProvenanceInputs:
    """Everything the statement says, already resolved (what `collect` gathers)."""

    external: dict[str, Any]  # every option of `image build`, as given (plus SOURCE_DATE_EPOCH)
    spec: ImageSpec
    context: dict[str, bytes]  # the build context's files (Dockerfile = the rendered recipe)
    image_id: str
    tag: str
    base_ref: str
    base_id: str
    base_layers: tuple[str, ...] = ()
    apt_sources: tuple[str, ...] = ()  # apt source lines of a bootstrapped base (mirror or snapshot)
    packages: tuple[tuple[str, str, str], ...] = ()  # (name, version, architecture) installed in the image
    wheels: tuple[str, ...] = ()  # wheels.lock lines `name==version --hash=sha256:...`
    aws_cli_zip_sha256: str = ""  # as the build saw it ("" when the step was cached before it was recorded)
    builder_id: str = ""
    engine_version: str = ""
    started: str = ""
    finished: str = ""
    components: dict[str, str] = field(default_factory=dict)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def statement(inp: ProvenanceInputs) -> dict[str, Any]:
    """The in-toto v1 statement with the SLSA v1 provenance predicate (pure, deterministic)."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": inp.tag, "digest": {"sha256": _hex(inp.image_id)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": inp.external,
                "internalParameters": _internal(inp),
                "resolvedDependencies": resolved_dependencies(inp),
            },
            "runDetails": {
                "builder": {"id": inp.builder_id,
                            "version": {"ap-build": __version__, "engine": inp.engine_version}},
                "metadata": {"invocationId": f"{inp.tag}@{inp.image_id}",
                             "startedOn": inp.started, "finishedOn": inp.finished},
                "byproducts": [
                    {"name": "image-config", "digest": {"sha256": _hex(inp.image_id)},
                     "annotations": {"components": dict(sorted(inp.components.items()))}},
                ],
            },
        },
    }


def _internal(inp: ProvenanceInputs) -> dict[str, Any]:
    spec = inp.spec
    sources = asdict(spec.sources)
    return {
        "platform": spec.platform.name, "sources": sources, "suite": spec.suite,
        "cuda": {"version": spec.cuda_version, **spec.cuda},
        "versions": dict(sorted(spec.versions.items())), "revision": spec.revision, "created": spec.created,
        "recipe": {"Dockerfile": {"sha256": sha256(inp.context.get("Dockerfile", b""))}},
    }


def resolved_dependencies(inp: ProvenanceInputs) -> list[dict[str, Any]]:
    """Every input with its digest: recipe files, ap-build's source, base, apt, packages, wheels, AWS CLI, CUDA."""
    spec = inp.spec
    deps: list[dict[str, Any]] = []
    for name in sorted(inp.context):  # the recipe and the files it copies (ca.crt: its digest only)
        deps.append({"name": f"recipe/{name}", "digest": {"sha256": sha256(inp.context[name])}})
    if spec.revision:
        deps.append({"name": "ap-build", "uri": f"git+{spec.oci.get('source', '')}@{spec.revision}",
                     "digest": {"gitCommit": spec.revision}})
    base: dict[str, Any] = {"name": "base", "uri": f"oci://{inp.base_ref}", "digest": {"sha256": _hex(inp.base_id)}}
    if inp.base_layers:
        base["annotations"] = {"diffIds": list(inp.base_layers)}
    if "@sha256:" in inp.base_ref:
        base["annotations"] = {**base.get("annotations", {}), "manifest": inp.base_ref.split("@", 1)[1]}
    deps.append(base)
    snapshot = str(inp.external.get("snapshot") or "")
    for line in inp.apt_sources:
        deps.append({"name": "apt-source", "uri": line.split()[1],
                     "annotations": {"line": line, **({"snapshot": snapshot} if snapshot else {})}})
    if spec.sources.apt_mirror:
        deps.append({"name": "apt-source", "uri": spec.sources.apt_mirror, "annotations": {"role": "apt_mirror"}})
    if inp.packages:
        listing = "".join(f"{n}={v}:{a}\n" for n, v, a in sorted(inp.packages)).encode()
        deps.append({"name": "dpkg-installed", "digest": {"sha256": sha256(listing)},
                     "annotations": {"count": len(inp.packages)}})
        for name, version, arch in sorted(inp.packages):
            deps.append({"name": f"deb/{name}", "uri": f"pkg:deb/{_distro(spec)}/{name}@{version}?arch={arch}"})
    for line in inp.wheels:
        m = re.match(r"([A-Za-z0-9._-]+)==(\S+)\s+--hash=sha256:([0-9a-f]{64})", line)
        if m:
            deps.append({"name": f"wheel/{m.group(1)}", "uri": f"pkg:pypi/{m.group(1).lower()}@{m.group(2)}",
                         "digest": {"sha256": m.group(3)}})
    if spec.sources.aws_cli == "zip":
        zip_dep: dict[str, Any] = {
            "name": "aws-cli", "uri": spec.sources.aws_cli_url.format(version=spec.versions.get("aws_cli", "")),
            "annotations": {"signingKeyFingerprint": spec.sources.aws_cli_fingerprint}}
        if inp.aws_cli_zip_sha256:
            zip_dep["digest"] = {"sha256": inp.aws_cli_zip_sha256}
        deps.append(zip_dep)
    if spec.cuda_version:
        cuda: dict[str, Any] = {"name": "cuda", "annotations": {"version": spec.cuda_version,
                                                                "full": spec.cuda.get("full", ""),
                                                                "source": spec.sources.cuda}}
        if spec.sources.cuda == "nvidia":
            cuda["uri"] = spec.sources.nvidia_repo
            cuda["annotations"]["repositoryKeyFingerprint"] = spec.sources.nvidia_key_fingerprint
            cuda["annotations"]["packages"] = list(spec.cuda.get("apt", []))
        elif spec.sources.cuda == "pypi":
            cuda["annotations"]["wheel"] = spec.cuda.get("wheel", "")
        else:
            cuda["annotations"]["package"] = spec.cuda.get("debian", "")
        deps.append(cuda)
    if spec.runtime == "r" and spec.sources.r == "cran":
        deps.append({"name": "cran", "uri": spec.sources.cran_repo,
                     "annotations": {"keyFingerprint": spec.sources.cran_key_fingerprint}})
    return deps


def _distro(spec: ImageSpec) -> str:
    return "ubuntu" if spec.suite in ("noble", "jammy", "focal") else "debian"


def resubject(stmt: dict[str, Any], name: str, digest: str) -> dict[str, Any]:
    """The same statement about the pushed manifest `digest` (pure)."""
    return {**stmt, "subject": [{"name": name, "digest": {"sha256": _hex(digest)}}]}


# --- side effects: gather the inputs, write the statement -----------------------------------------

class ZipDigestWatcher:
    """Passes build lines on and remembers the AWS CLI zip's sha256 the recipe prints."""

    def __init__(self, on_line: Callable[[str], None] | None) -> None:
        self.on_line = on_line
        self.digest = ""

    def __call__(self, line: str) -> None:
        m = _ZIP_LINE.match(line.strip())
        if m:
            self.digest = m.group(1)
        if self.on_line:
            self.on_line(line)


def zip_digest(cache: Path, url: str, seen: str) -> str:
    """The zip digest seen in this build, else the one recorded when the (now cached) step last ran."""
    rel = f"aws-cli/{sha256(url.encode())}"
    if seen:
        write_cache(rel, seen + "\n", cache)
        return seen
    return (read_cache(rel, cache) or "").strip()


def installed_packages(engine: Any, image_id: str, cache: Path) -> tuple[tuple[str, str, str], ...]:
    """(name, version, architecture) of every dpkg package in the image (one container, cached by image ID)."""
    rel = f"packages/{_hex(image_id)}.json"
    if (kept := read_cache(rel, cache)) is not None:
        return tuple(tuple(p) for p in json.loads(kept))  # type: ignore[misc]
    code, output = engine.run(image_id, ["-c", "dpkg-query -W -f '${Package}\\t${Version}\\t${Architecture}\\n'"],
                              entrypoint=["sh"], user="0")
    if code != 0:
        return ()
    rows = sorted(tuple(ln.split("\t")) for ln in output.splitlines() if ln.count("\t") == 2)
    write_cache(rel, json.dumps(rows), cache)
    return tuple(rows)  # type: ignore[arg-type]


def share_packages(image_id: str, same_as: str, cache: Path) -> None:
    """Record for `image_id` the package list read from `same_as`, an image with the same dpkg state (its
    normalised copy: `reproduce` removes no dpkg file)."""
    kept = read_cache(f"packages/{_hex(same_as)}.json", cache)
    if kept is not None:
        write_cache(f"packages/{_hex(image_id)}.json", kept, cache)


def collect(engine: Any, *, external: dict[str, Any], spec: ImageSpec, context: dict[str, bytes], image_id: str,
            tag: str, apt_sources: tuple[str, ...], zip_seen: str, started: str, finished: str,
            components: dict[str, str], cache: Path) -> ProvenanceInputs:
    """Gather what the statement says from the engine and ap-build's cache (side effects)."""
    base = engine.inspect(spec.base)
    wheels = tuple(ln for ln in context.get("wheels.lock", b"").decode().splitlines() if ln.strip())
    zip_url = spec.sources.aws_cli_url.format(version=spec.versions.get("aws_cli", ""))
    built = engine.inspect(image_id)  # the builder's version as the image records it (`/version` is slow on Podman)
    labels = (built.get("Config") or {}).get("Labels") or {}
    engine_version = (f"buildah {labels['io.buildah.version']}" if labels.get("io.buildah.version")
                      else f"docker {built.get('DockerVersion')}" if built.get("DockerVersion") else "")
    return ProvenanceInputs(
        external=external, spec=spec, context=context, image_id=image_id, tag=tag, base_ref=spec.base,
        base_id=str(base["Id"]), base_layers=tuple(base.get("RootFS", {}).get("Layers") or ()),
        apt_sources=apt_sources, packages=installed_packages(engine, image_id, cache), wheels=wheels,
        aws_cli_zip_sha256=zip_digest(cache, zip_url, zip_seen) if spec.sources.aws_cli == "zip" else "",
        builder_id=builder_id(), engine_version=engine_version,
        started=started, finished=finished, components=components,
    )


def builder_id() -> str:
    """Who built: $AP_BUILD_BUILDER_ID (CI sets its run URL), else this host."""
    return os.environ.get("AP_BUILD_BUILDER_ID") or f"https://ap-build.local/{socket.gethostname()}"


def cache_path(cache: Path, image_id: str) -> Path:
    return cache / "provenance" / f"{_hex(image_id)}.intoto.json"


def beside(report: Path) -> Path:
    """`out/build-report.json` -> `out/build-report.intoto.json`."""
    return report.with_name(report.name.removesuffix(".json") + ".intoto.json")


def dumps(stmt: dict[str, Any]) -> str:
    return json.dumps(stmt, indent=2, sort_keys=True) + "\n"


def write(stmt: dict[str, Any], image_id: str, cache: Path, report: Path | None) -> Path | None:
    """Write the statement into the cache (by image ID) and beside the report; return where it landed
    (None: no report, and a cache folder that cannot be written)."""
    text = dumps(stmt)
    target = cache_path(cache, image_id)
    kept = write_cache(str(target.relative_to(cache)), text, cache)
    if report is not None:
        fsio.write_output(beside(report), text)
        return beside(report)
    return target if kept else None


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or data.get("predicateType") != PREDICATE_TYPE:
        raise ValueError(f"{path} is not a SLSA v1 provenance statement")
    return data
