"""The OCI image index of a multi-platform push, and what `image push` reports about it (pure).

The engine pushes each platform's image with whatever manifest type it writes (Podman's Docker API: Docker's
schema 2). An OCI index should list OCI manifests, and Docker, containerd and Podman all read an index of OCI
manifests, so each platform's manifest is re-written as an OCI image manifest over the same blobs (the config
and layers are byte for byte the engine's: the image ID stays the config digest) before the index lists it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ap_build.images.platforms import Platform

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# Docker's schema 2 media types and their OCI equivalents (the blobs are the same bytes)
_AS_OCI = {
    DOCKER_MANIFEST: OCI_MANIFEST,
    "application/vnd.docker.container.image.v1+json": OCI_CONFIG,
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}


def _compact(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def as_oci_manifest(data: bytes) -> bytes:
    """An image manifest (Docker schema 2 or OCI) as an OCI image manifest over the same config and layers.

    ValueError for anything that is not one image's manifest (e.g. an index, or schema 1).
    """
    doc = json.loads(data)
    media_type = doc.get("mediaType", OCI_MANIFEST)
    if doc.get("schemaVersion") != 2 or media_type not in (OCI_MANIFEST, DOCKER_MANIFEST) or "config" not in doc:
        raise ValueError(f"not an image manifest of schema 2 ({media_type})")
    if media_type == OCI_MANIFEST:
        return data
    out = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {**doc["config"], "mediaType": _AS_OCI.get(doc["config"]["mediaType"], OCI_CONFIG)},
           "layers": [{**layer, "mediaType": _AS_OCI.get(layer["mediaType"], layer["mediaType"])}
                      for layer in doc.get("layers", [])]}
    return _compact(out)


def platform_of(target: Platform) -> dict[str, str]:
    """The `platform` of an index entry: `{architecture, os}` plus `variant` where the architecture has one."""
    out = {"architecture": target.arch, "os": target.os}
    if target.variant:
        out["variant"] = target.variant
    return out


def index_document(entries: dict[Platform, tuple[str, int]]) -> bytes:
    """The OCI image index listing each platform's OCI manifest (platform -> (digest, size)), amd64 first."""
    manifests = [{"mediaType": OCI_MANIFEST, "digest": digest, "size": size, "platform": platform_of(p)}
                 for p, (digest, size) in sorted(entries.items())]
    return _compact({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})


@dataclass(frozen=True)
class PlatformPush:
    """One platform's image as pushed: its local image ID and its OCI manifest under `<tag>-<arch>`."""

    platform: Platform
    image_id: str
    reference: str  # REGISTRY/NAME:TAG-ARCH@sha256:... (the OCI manifest)

    @property
    def digest(self) -> str:
        return self.reference.rsplit("@", 1)[1]


@dataclass
class IndexPush:
    """What a multi-platform `image push` did: one index under the tag, one manifest per platform."""

    reference: str  # REGISTRY/NAME:TAG@sha256:... of the index: what downstream FROM lines pin
    platforms: list[PlatformPush]
    attestations: dict[str, str] = field(default_factory=dict)  # platform -> where its attestations are

    @property
    def digest(self) -> str:
        return self.reference.rsplit("@", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, "reference": self.reference, "digest": self.digest, "media_type": OCI_INDEX,
                "platforms": [{"platform": p.platform.name, "image_id": p.image_id, "digest": p.digest,
                               "reference": p.reference, "attestations": self.attestations.get(p.platform.name)}
                              for p in self.platforms]}

    def summary_lines(self) -> list[str]:
        return [f"  {p.platform.name:<12} {p.reference}" for p in self.platforms]
