"""Read an image archive (`docker save` or OCI layout tar) without an engine: its manifest and config.

Used to tell a user clearly that a file is not an image archive (when Trivy could not read it).
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ap_build.errors import UsageError
from ap_build.scan.inputs import load_json, read_member

MAX_MEMBER_BYTES = 16 * 1024 * 1024  # a manifest, index or config JSON (real ones are a few kB)


@dataclass
class ImageArchive:
    """An image archive's config JSON, its layer member names (bottom first) and its tags."""

    path: Path
    config: dict[str, Any]
    layers: list[str]
    repo_tags: list[str]


def _read_json(tar: tarfile.TarFile, name: object, kind: type = dict) -> Any:
    """The JSON document at member `name`, which must be a `kind` (the archive is untrusted input)."""
    if not isinstance(name, str):
        raise ValueError(f"a member name is {name!r}, not a string")
    info = tar.getmember(name)  # KeyError when missing
    if not info.isfile():  # a link (perhaps to itself) or a folder: never followed
        raise ValueError(f"{name} is not a regular file in the archive")
    member = tar.extractfile(info)
    if member is None:
        raise KeyError(name)
    doc = load_json(read_member(member, MAX_MEMBER_BYTES))
    if not isinstance(doc, kind):
        raise ValueError(f"{name} holds a {type(doc).__name__}, not a {kind.__name__}")
    return doc


def _strings(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} is not a list of strings")
    return value


def open_archive(path: Path) -> ImageArchive:
    """Parse the archive's manifest and config; UsageError if `path` is not an image archive."""
    try:
        with tarfile.open(path, "r:*") as tar:
            names = set(tar.getnames())
            if "manifest.json" in names:
                manifest = _read_json(tar, "manifest.json", list)[0]
                if not isinstance(manifest, dict):
                    raise ValueError("manifest.json lists no image")
                config = _read_json(tar, manifest["Config"])
                tags = _strings(manifest.get("RepoTags") or [], "RepoTags")
                return ImageArchive(path, config, _strings(manifest["Layers"], "Layers"), tags)
            if "index.json" in names:
                index = _read_json(tar, "index.json")
                desc = index["manifests"][0]
                blob = _blob(desc["digest"])
                doc = _read_json(tar, blob)
                if "manifests" in doc:  # an index inside the index: take the first image
                    doc = _read_json(tar, _blob(doc["manifests"][0]["digest"]))
                config = _read_json(tar, _blob(doc["config"]["digest"]))
                ref = (desc.get("annotations") or {}).get("org.opencontainers.image.ref.name")
                layers = [_blob(layer["digest"]) for layer in doc["layers"]]
                return ImageArchive(path, config, layers, [str(ref)] if ref else [])
    except (tarfile.TarError, OSError, KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"{path}: not a readable image archive ({type(exc).__name__}: {exc})",
            hint="pass an engine image reference, or a `docker save`/OCI archive",
        ) from exc
    raise UsageError(
        f"{path}: not an image archive (no manifest.json or index.json)",
        hint="pass an engine image reference, or a `docker save`/OCI archive",
    )


def _blob(digest: object) -> str:
    if not isinstance(digest, str) or "/" in digest or ".." in digest:
        raise ValueError(f"digest {digest!r} is not algorithm:hex")
    algo, _, hexd = digest.partition(":")
    return f"blobs/{algo}/{hexd}"
