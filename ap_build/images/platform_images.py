"""Multi-platform images in the engine and the registry: which local image is each platform's (the record a
multi-platform build leaves, `platforms.py`), their push with one OCI image index (`index.py` writes it), the
contract run on each platform (emulated where the host is not native), and the host's own image of a tag for
`workflow run`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ap_build.errors import EngineError, SourceError, UsageError
from ap_build.images.index import OCI_INDEX, OCI_MANIFEST, IndexPush, PlatformPush, as_oci_manifest, index_document
from ap_build.images.platforms import Platform, host_platform, parse_platform, platform_tag, read_build
from ap_build.reference import parse_ref

if TYPE_CHECKING:
    from ap_build.engine import Engine
    from ap_build.images.contract import ContractResult


def image_platform(inspected: dict[str, Any]) -> Platform | None:
    """The platform an image's config declares (`Os`/`Architecture` of the engine's inspect), if supported."""
    try:
        return parse_platform(f"{inspected.get('Os') or 'linux'}/{inspected.get('Architecture') or ''}")
    except UsageError:
        return None


def _image_id(engine: Engine, ref: str) -> str | None:
    return str(engine.inspect(ref)["Id"]) if engine.image_exists(ref) else None


def recorded_images(engine: Engine, tag: str) -> dict[Platform, str] | None:
    """Each platform's image ID of the multi-platform build recorded for `tag`, if the engine still has it.

    None: never built for several platforms, or `tag` was since rebuilt for one (it is no recorded image).
    UsageError: a platform's `<tag>-<arch>` is no longer the recorded image, or declares another platform.
    """
    record = read_build(tag)
    if not record:
        return None
    plain = _image_id(engine, tag)
    if plain is not None and plain not in record.values():
        return None
    rebuild = f"build it again: ap-build image build ... -t {tag} --platform {','.join(p.name for p in record)}"
    for target, image_id in record.items():
        local = platform_tag(tag, target)
        if _image_id(engine, local) != image_id:
            raise UsageError(f"{local} is not the {target} image the multi-platform build of {tag} made "
                             f"({image_id[:19]})", hint=rebuild)
        declared = image_platform(engine.inspect(image_id))
        if declared != target:
            raise UsageError(f"{local} declares platform {declared or 'unknown'}, not {target}", hint=rebuild)
    return record


def select(record: dict[Platform, str], only: tuple[Platform, ...] | None, tag: str) -> dict[Platform, str]:
    """The recorded platforms restricted to `--platform` (pure); UsageError for one the build did not make."""
    if only is None:
        return dict(sorted(record.items()))
    missing = [p.name for p in only if p not in record]
    if missing:
        raise UsageError(f"{tag} was built for {', '.join(p.name for p in sorted(record))}, not {', '.join(missing)}",
                         hint=f"drop --platform {','.join(missing)}, or build {tag} for it")
    return {p: record[p] for p in sorted(only)}


def is_registry_ref(ref: str) -> bool:
    """True if `ref` names a registry host (`host.name/...`, `host:port/...`), not the engine's local names."""
    first, sep, _ = parse_ref(ref)[0].partition("/")
    return bool(sep) and ("." in first or ":" in first)


# --- push: each platform's image, then one OCI index under the tag ----------------------------------------------

def push_index(engine: Engine, images: dict[Platform, str], dest: str,
               on_line: Callable[[str], None] | None = None) -> IndexPush:
    """Push each platform's image as `DEST-<arch>` (re-written as an OCI manifest over the same blobs), then one
    OCI image index listing them under DEST's tag. Returns what was pushed, the index's reference first."""
    from ap_build.images.registry import Reference, Registry

    if "@" in dest:
        raise UsageError(f"push target {dest} carries a digest", hint="give REGISTRY/NAME:TAG; the digest is printed")
    ref = Reference.parse(dest)
    tag = ref.tag or "latest"
    reg = Registry(ref.host)
    entries: dict[Platform, tuple[str, int]] = {}
    pushed: list[PlatformPush] = []
    for target, image_id in sorted(images.items()):
        local = platform_tag(f"{ref.name}:{tag}", target)
        engine.tag(image_id, local)
        engine_digest = engine.push(local, on_line=on_line)
        got = reg.manifest(ref.repo, engine_digest)
        if got is None:
            raise SourceError(f"registry {ref.host} has no manifest {engine_digest} right after its push of {local}")
        try:
            oci = as_oci_manifest(got[0])
        except ValueError as exc:
            raise SourceError(f"{local}@{engine_digest}: {exc}", hint="push with an engine that writes schema 2 "
                              "manifests (Docker, Podman)") from exc
        digest = reg.put_manifest(ref.repo, parse_ref(local)[1] or tag, oci, OCI_MANIFEST)
        entries[target] = (digest, len(oci))
        pushed.append(PlatformPush(target, image_id, f"{local}@{digest}"))
    digest = reg.put_manifest(ref.repo, tag, index_document(entries), OCI_INDEX)
    return IndexPush(f"{ref.name}:{tag}@{digest}", pushed)


# --- test: the contract on each platform's image -----------------------------------------------------------------

def emulation_problem(engine: Engine, target: Platform, host: Platform | None = None,
                      binfmt: Path | None = None) -> tuple[str, str] | None:
    """(why, fix) when this machine cannot run `target`'s containers; None when it can, or cannot tell (a remote
    engine runs them on its own machine). `emulation.support` reads binfmt_misc; bootstrapping's arch-test is
    not needed to run."""
    from ap_build.images import emulation

    host = host or host_platform()
    if target == host or sys.platform != "linux" or not engine.host.startswith("unix://"):
        return None
    found = emulation.support(target, host, binfmt)
    if found.ok or "arch-test" in found.detail:
        return None
    return f"cannot run {target} images on this {host} machine: {found.detail}", found.fix


EMULATED_TIMEOUT = 3600  # seconds for each half of the contract under emulation (pip and R run 5-20x slower)


@dataclass
class PlatformContract:
    platform: Platform
    image: str
    emulated: bool
    result: ContractResult

    def to_dict(self) -> dict[str, Any]:
        return {"platform": self.platform.name, "emulated": self.emulated, **self.result.to_dict(),
                "image": self.image}


def contract_images(engine: Engine, image: str, only: tuple[Platform, ...] | None) -> dict[Platform, str] | None:
    """The local image of each platform `image test` runs the contract on; None: `image` alone (one platform).

    A multi-platform build's record gives `<tag>-<arch>`; without one, `--platform` takes `<tag>-<arch>` or
    the image itself where it is of that platform, else pulls a registry reference for that platform.
    """
    record = recorded_images(engine, image)
    if record is not None:
        return {p: platform_tag(image, p) for p in select(record, only, image)}
    if only is None:
        return None
    return {p: _platform_image(engine, image, p) for p in sorted(only)}


def _platform_image(engine: Engine, image: str, target: Platform) -> str:
    for candidate in (platform_tag(image, target), image):
        if engine.image_exists(candidate) and image_platform(engine.inspect(candidate)) == target:
            return candidate
    if not is_registry_ref(image):
        raise UsageError(f"there is no {target} image of {image} in the engine",
                         hint=f"build it with --platform {target}, or give the registry reference to pull")
    image_id = engine.pull(image, platform=target.name)
    if image_platform(engine.inspect(image_id)) != target:
        raise UsageError(f"{image} has no {target} image in its registry", hint="push a multi-platform build first")
    return image_id


def run_contracts(engine: Engine, images: dict[Platform, str], runtime: str | None, *, common_only: bool = False
                  ) -> list[PlatformContract]:
    """The contract on each platform's image, one after the other (each already runs its halves side by side);
    `common_only`: its runtime-independent items only (`contract.run_contract`)."""
    from ap_build.images.contract import run_contract

    host = host_platform()
    for target in images:
        if (problem := emulation_problem(engine, target, host)) is not None:
            raise EngineError(problem[0], hint=problem[1])
    return [PlatformContract(p, ref, p != host, run_contract(engine, ref, runtime, common_only=common_only,
                                                             timeout=900 if p == host else EMULATED_TIMEOUT))
            for p, ref in images.items()]


# --- run: the host's own image of a tag ---------------------------------------------------------------------------

def inspect_or_none(engine: Engine, ref: str) -> dict[str, Any] | None:
    """The engine's inspect of `ref`, or None if it has no such image (one engine call on the usual path)."""
    try:
        return engine.inspect(ref)
    except EngineError:
        if engine.image_exists(ref):  # it is there: the engine failed otherwise
            raise
        return None


@dataclass(frozen=True)
class Picked:
    """The image `workflow run` runs for a reference, its inspect, and what was done to get it."""

    image: str
    inspected: dict[str, Any]
    note: str | None = None

    @property
    def platform(self) -> Platform | None:
        return image_platform(self.inspected)


def pick_for_host(engine: Engine, ref: str, host: Platform | None = None) -> Picked | None:
    """The host's own image of `ref`: a local multi-platform build's `<tag>-<arch>`; a registry tag the engine
    lacks, or holds for another platform, pulled for the host (of an index: the host's entry); else `ref` as it
    is. None: not in the engine and not a registry reference. SourceError: not here and its pull failed."""
    host = host or host_platform()
    record = recorded_images(engine, ref)
    if record:
        target = host if host in record else sorted(record)[0]
        local = platform_tag(ref, target)
        return Picked(local, engine.inspect(local), None if target == host else f"{ref} was built for "
                      f"{', '.join(p.name for p in sorted(record))}: running {target} under emulation")
    local = inspect_or_none(engine, ref)
    have = image_platform(local) if local is not None else None
    if local is not None and (have == host or not is_registry_ref(ref)):
        return Picked(ref, local)
    if not is_registry_ref(ref):
        return None
    try:
        image_id = engine.pull(ref, platform=host.name)
    except SourceError as exc:
        if local is None:
            raise
        return Picked(ref, local, f"{ref} is the {have} image here and the {host} one could not be pulled "
                      f"({exc.message[:200]}): running {have} under emulation")
    got = engine.inspect(image_id)
    ok = image_platform(got) == host
    return Picked(ref, got, f"pulled {ref} for {host}" + ("" if ok else f" (its registry has no {host} image)"))
