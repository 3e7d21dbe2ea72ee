"""Signed attestations on push: the SBOM (SPDX JSON and CycloneDX, from Trivy) and the SLSA provenance,
each an in-toto statement about the pushed digest in a DSSE envelope, attached the way cosign does.

Layout (what `cosign verify-attestation --key` reads): one OCI image manifest tagged `sha256-<hex>.att` in
the image's repository; each attestation is a layer of media type `application/vnd.dsse.envelope.v1+json`
with the annotations `dev.cosignproject.cosign/signature: ""` and `predicateType`. Where the registry has the
OCI 1.1 referrers API the same manifest also names the image as its `subject`, so it is listed there too.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ap_build.errors import UsageError
from ap_build.images import dsse, provenance
from ap_build.images.registry import OCI_MANIFEST, Reference, Registry

DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
SPDX = "https://spdx.dev/Document"
CYCLONEDX = "https://cyclonedx.org/bom"
PREDICATES = {provenance.PREDICATE_TYPE: "provenance (SLSA v1)", SPDX: "SBOM (SPDX)", CYCLONEDX: "SBOM (CycloneDX)"}
_ZERO_TIME = "0001-01-01T00:00:00Z"


def att_tag(digest: str) -> str:
    """cosign's tag for the attestations of `digest`: `sha256-<hex>.att`."""
    algo, _, hexdigest = digest.partition(":")
    return f"{algo}-{hexdigest}.att"


def config_blob(layer_digests: list[str]) -> bytes:
    """The image config cosign (go-containerregistry's empty image + layers) writes (pure)."""
    config = {"architecture": "", "created": _ZERO_TIME, "history": [{"created": _ZERO_TIME} for _ in layer_digests],
              "os": "", "rootfs": {"type": "layers", "diff_ids": layer_digests}, "config": {}}
    return json.dumps(config, separators=(",", ":")).encode()


def layer_descriptor(envelope: bytes, predicate_type: str, digest: str) -> dict[str, Any]:
    return {"mediaType": DSSE_MEDIA_TYPE, "size": len(envelope), "digest": digest,
            "annotations": {SIGNATURE_ANNOTATION: "", "predicateType": predicate_type}}


def manifest(layers: list[dict[str, Any]], config: bytes, config_digest: str,
             subject: dict[str, Any] | None = None) -> bytes:
    """The attestation manifest (pure)."""
    body: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "size": len(config), "digest": config_digest},
        "layers": layers,
    }
    if subject is not None:
        body["subject"] = subject
    return json.dumps(body, separators=(",", ":")).encode()


def attach(reg: Registry, repo: str, digest: str, envelopes: list[tuple[str, bytes]]) -> str:
    """Upload the envelopes and the manifest tagged `sha256-<hex>.att`; keep attestations of other predicate
    types already there (as cosign appends), replace those of the same types. Returns the tag."""
    tag = att_tag(digest)
    ours = {ptype for ptype, _ in envelopes}
    layers: list[dict[str, Any]] = []
    existing = reg.manifest(repo, tag)
    if existing is not None:
        for layer in json.loads(existing[0]).get("layers", []):
            if layer.get("annotations", {}).get("predicateType") not in ours:
                layers.append(layer)
    for ptype, envelope in envelopes:
        layers.append(layer_descriptor(envelope, ptype, reg.put_blob(repo, envelope)))
    config = config_blob([layer["digest"] for layer in layers])
    config_digest = reg.put_blob(repo, config)
    subject = None
    if reg.referrers(repo, digest) is not None:
        image = reg.manifest(repo, digest)
        if image is not None:
            subject = {"mediaType": image[1], "size": len(image[0]), "digest": digest}
    reg.put_manifest(repo, tag, manifest(layers, config, config_digest, subject))
    return tag


@dataclass
class Attached:
    reference: str  # name:tag@sha256:... that was pushed
    tag: str  # where the attestations are: name:sha256-<hex>.att
    documents: list[str]  # predicate types attached
    provenance: str  # the provenance file used


def sboms(engine: Any, image: str, workdir: Path) -> dict[str, Any]:
    """SPDX JSON and CycloneDX of `image` (a reference in the engine), from Trivy, by predicate type."""
    from ap_build.scan.gate import sbom
    from ap_build.scan.trivy import TrivyOptions

    out: dict[str, Any] = {}
    for ptype, fmt in ((SPDX, "spdx-json"), (CYCLONEDX, "cyclonedx")):
        path = sbom(image, fmt, workdir / f"sbom.{fmt}.json", TrivyOptions(secrets=False), engine=engine)
        out[ptype] = json.loads(path.read_text())
    return out


def find_provenance(image_id: str, explicit: Path | None) -> tuple[dict[str, Any], Path]:
    """The build's provenance (`--provenance FILE`, else the cache by image ID); it must be about `image_id`."""
    from ap_build.resources import cache_dir

    path = explicit or provenance.cache_path(cache_dir(), image_id)
    if not path.is_file():
        raise UsageError(f"no provenance recorded for image {image_id[:19]}",
                         hint="build it with `ap-build image build` on this machine, or pass --provenance FILE")
    try:
        stmt = provenance.load(path)
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}", hint="pass the .intoto.json that `image build` wrote") from exc
    subjects = [s.get("digest", {}).get("sha256") for s in stmt.get("subject", [])]
    if image_id.removeprefix("sha256:") not in subjects:
        raise UsageError(f"{path} is the provenance of another image (not {image_id[:19]})",
                         hint="pass the provenance written by the build of this image")
    return stmt, path


def attest_push(engine: Any, image: str, pinned: str, key_path: Path, *, provenance_file: Path | None = None,
                say: Callable[[str], None] | None = None) -> Attached:
    """Sign and attach the provenance and both SBOMs to the pushed `pinned` (`name:tag@sha256:...`)."""
    say = say or (lambda _m: None)
    key = dsse.load_private_key(key_path)
    image_id = str(engine.inspect(image)["Id"])
    stmt, prov_path = find_provenance(image_id, provenance_file)
    ref = Reference.parse(pinned)
    assert ref.digest
    reg = Registry(ref.host)
    with tempfile.TemporaryDirectory(prefix="ap-build-sbom-") as tmp:
        say(f"attest: SBOMs of {image_id[:19]} (Trivy: SPDX JSON, CycloneDX)")
        documents = sboms(engine, image_id, Path(tmp))
    statements = [provenance.resubject(stmt, ref.name, ref.digest)]
    statements += [dsse.statement(ptype, doc, ref.name, ref.digest) for ptype, doc in documents.items()]
    envelopes = [(s["predicateType"], dsse.sign(s, key)) for s in statements]
    tag = attach(reg, ref.repo, ref.digest, envelopes)
    return Attached(reference=pinned, tag=f"{ref.name}:{tag}", documents=[p for p, _ in envelopes],
                    provenance=str(prov_path))
