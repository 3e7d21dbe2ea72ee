"""Read an image archive (`docker save` or OCI layout tar) without an engine: its config and one file.

Used to find the base image's ignore list inside the image being scanned (no network, no container):
the topmost layer that holds the file (or a whiteout for it) wins, as in the image's filesystem.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ap_build.errors import UsageError


@dataclass
class ImageArchive:
    """The parts of an image archive we need: its config JSON and layer member names, bottom first."""

    path: Path
    config: dict[str, Any]
    layers: list[str]

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.config.get("config") or {}).get("Labels") or {})

    @property
    def repo_tags(self) -> list[str]:
        return list(self.config.get("_repo_tags") or [])


def _read_json(tar: tarfile.TarFile, name: str) -> Any:
    member = tar.extractfile(name)
    if member is None:
        raise KeyError(name)
    return json.load(member)


def open_archive(path: Path) -> ImageArchive:
    """Parse the archive's manifest and config; UsageError if `path` is not an image archive."""
    try:
        with tarfile.open(path, "r:*") as tar:
            names = set(tar.getnames())
            if "manifest.json" in names:
                manifest = _read_json(tar, "manifest.json")[0]
                config = _read_json(tar, manifest["Config"])
                config["_repo_tags"] = manifest.get("RepoTags") or []
                return ImageArchive(path, config, list(manifest["Layers"]))
            if "index.json" in names:
                index = _read_json(tar, "index.json")
                desc = index["manifests"][0]
                blob = _blob(desc["digest"])
                doc = _read_json(tar, blob)
                if "manifests" in doc:  # an index inside the index: take the first image
                    doc = _read_json(tar, _blob(doc["manifests"][0]["digest"]))
                config = _read_json(tar, _blob(doc["config"]["digest"]))
                ref = (desc.get("annotations") or {}).get("org.opencontainers.image.ref.name")
                config["_repo_tags"] = [ref] if ref else []
                return ImageArchive(path, config, [_blob(layer["digest"]) for layer in doc["layers"]])
    except (tarfile.TarError, OSError, KeyError, IndexError, ValueError, TypeError) as exc:
        raise UsageError(
            f"{path}: not a readable image archive ({type(exc).__name__}: {exc})",
            hint="pass an engine image reference, or a `docker save`/OCI archive",
        ) from exc
    raise UsageError(
        f"{path}: not an image archive (no manifest.json or index.json)",
        hint="pass an engine image reference, or a `docker save`/OCI archive",
    )


def _blob(digest: str) -> str:
    algo, _, hexd = digest.partition(":")
    return f"blobs/{algo}/{hexd}"


def _norm(name: str) -> str:
    return posixpath.normpath("/" + name.lstrip("./")).lstrip("/") if name not in (".", "./") else ""


def _search_layer(fh: IO[bytes], target: str) -> tuple[str, bytes | None] | None:
    """('file', data) if the layer has `target`, ('deleted', None) for a whiteout, None if untouched."""
    parent, base = posixpath.split(target)
    whiteout = posixpath.join(parent, ".wh." + base)
    opaque = posixpath.join(parent, ".wh..wh..opq")
    with tarfile.open(fileobj=fh, mode="r|*") as layer:
        found: tuple[str, bytes | None] | None = None
        for member in layer:
            name = _norm(member.name)
            if name == target and member.isfile():
                data = layer.extractfile(member)
                return ("file", data.read() if data else b"")
            if name in (whiteout, opaque) or (name == target and not member.isfile()):
                found = ("deleted", None)
        return found


def read_file(archive: ImageArchive, path_in_image: str) -> bytes | None:
    """The content of `path_in_image` in the image's final filesystem, or None if absent."""
    target = _norm(path_in_image)
    try:
        with tarfile.open(archive.path, "r:*") as tar:
            for layer_name in reversed(archive.layers):
                member = tar.extractfile(layer_name)
                if member is None:
                    continue
                hit = _search_layer(member, target)
                if hit is not None:
                    return hit[1]
    except (tarfile.TarError, OSError, KeyError) as exc:
        raise UsageError(f"{archive.path}: cannot read layer data ({exc})") from exc
    return None
