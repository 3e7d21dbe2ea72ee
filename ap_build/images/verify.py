"""`ap-build image verify IMAGE --key PUB`: find the attestations of the image's digest, check each
signature and that each statement is about that digest, and say what the provenance records.

A verdict names its reason when it fails: `missing-attestation`, `bad-signature`, `subject-mismatch`,
`predicate-mismatch`, `malformed`, `tampered-blob`. Could-not-run faults (no registry, no image, no key)
are raised as ApBuildError (exit 2). A tag of a multi-platform image (an OCI index or a Docker manifest list)
is verified platform by platform: each entry's digest must carry its own signed attestations, as `image push
--sign-key` attaches them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ap_build.errors import SourceError
from ap_build.images import dsse, provenance
from ap_build.images.attest import DSSE_MEDIA_TYPE, PREDICATES, att_tag
from ap_build.images.registry import MANIFEST_TYPES, Reference, Registry

INDEX_TYPES = MANIFEST_TYPES[2:]  # OCI image index, Docker manifest list


@dataclass
class Problem:
    reason: str
    message: str


@dataclass
class Verdict:
    image: str
    digest: str
    attestations: str = ""  # where they were found
    verified_documents: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)  # summary of what it says
    statements: dict[str, dict[str, Any]] = field(default_factory=dict)  # verified statements by predicate type
    rebuild: dict[str, Any] = field(default_factory=dict)  # `--rebuild`: the rebuilt image ID and the comparison
    platforms: list[dict[str, Any]] = field(default_factory=list)  # an index: each platform's own verdict

    @property
    def verified(self) -> bool:
        return not self.problems

    @property
    def reason(self) -> str:
        return self.problems[0].reason if self.problems else ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("statements")
        return {"verified": self.verified, "reason": self.reason, **data}


def _find(reg: Registry, ref: Reference, digest: str) -> tuple[str, list[dict[str, Any]]] | None:
    """(where, layer descriptors) of the attestations of `digest`: cosign's tag, else OCI 1.1 referrers."""
    tag = att_tag(digest)
    got = reg.manifest(ref.repo, tag)
    if got is not None:
        return f"{ref.name}:{tag}", list(json.loads(got[0]).get("layers", []))
    for desc in reg.referrers(ref.repo, digest) or []:
        found = reg.manifest(ref.repo, str(desc.get("digest", "")))
        layers = list(json.loads(found[0]).get("layers", [])) if found else []
        if any(layer.get("mediaType") == DSSE_MEDIA_TYPE for layer in layers):
            return f"{ref.name}@{desc['digest']} (referrer)", layers
    return None


def verify(image: str, key_path: Path, *, required: tuple[str, ...] = tuple(PREDICATES)) -> Verdict:
    """The verdict on `image` (a registry reference) with the public key at `key_path`."""
    key = dsse.load_public_key(key_path)
    ref = Reference.parse(image)
    reg = Registry(ref.host)
    digest = reg.resolve(ref)
    if ref.digest and ref.digest != digest:
        raise SourceError(f"registry {ref.host} resolved {image} to {digest}")
    got = reg.manifest(ref.repo, digest)
    if got is not None and got[1] in INDEX_TYPES:
        return _verify_index(reg, ref, Verdict(image=image, digest=digest), json.loads(got[0]), key, required)
    return _verify_manifest(reg, ref, Verdict(image=image, digest=digest), key, required)


def platform_name(entry: dict[str, Any]) -> str:
    """`linux/arm64/v8` from an index entry's platform (pure)."""
    plat = entry.get("platform") or {}
    return "/".join(str(part) for part in (plat.get("os"), plat.get("architecture"), plat.get("variant")) if part)


def _verify_index(reg: Registry, ref: Reference, verdict: Verdict, index: dict[str, Any], key: Any,
                  required: tuple[str, ...]) -> Verdict:
    """Each platform of an index verified as an image of its own; the index passes if every one does."""
    entries = [e for e in index.get("manifests") or []
               if e.get("annotations", {}).get("vnd.docker.reference.type") != "attestation-manifest"]
    if not entries:
        verdict.problems.append(Problem("malformed", f"the index {verdict.digest} lists no images"))
    for entry in entries:
        name, digest = platform_name(entry) or "unknown platform", str(entry.get("digest", ""))
        one = _verify_manifest(reg, ref, Verdict(image=f"{ref.name}@{digest}", digest=digest), key, required)
        verdict.platforms.append({"platform": name, **one.to_dict()})
        verdict.problems += [Problem(p.reason, f"{name}: {p.message}") for p in one.problems]
    return verdict


def _verify_manifest(reg: Registry, ref: Reference, verdict: Verdict, key: Any,
                     required: tuple[str, ...]) -> Verdict:
    """The verdict on one image manifest: its attestations found, opened with `key` and checked."""
    digest = verdict.digest
    found = _find(reg, ref, digest)
    if found is None:
        verdict.problems.append(Problem("missing-attestation", f"no attestations for {digest} (no tag "
                                        f"{att_tag(digest)}, no referrers)"))
        return verdict
    verdict.attestations, layers = found
    seen: set[str] = set()
    for layer in layers:
        if layer.get("mediaType") != DSSE_MEDIA_TYPE:
            continue
        ptype = str(layer.get("annotations", {}).get("predicateType", ""))
        seen.add(ptype)
        name = PREDICATES.get(ptype, ptype or "unnamed")
        try:
            blob = reg.blob(ref.repo, str(layer["digest"]))
        except SourceError as exc:
            verdict.problems.append(Problem("tampered-blob", f"the {name} attestation: {exc.message}"))
            continue
        try:
            stmt = dsse.open_envelope(blob, key)
        except dsse.EnvelopeError as exc:
            verdict.problems.append(Problem(exc.reason, f"the {name} attestation: {exc.message}"))
            continue
        if stmt.get("predicateType") != ptype:
            verdict.problems.append(Problem("predicate-mismatch", f"the layer says {name} but the signed statement "
                                            f"is {stmt.get('predicateType')!r}"))
            continue
        subjects = [str(s.get("digest", {}).get("sha256", "")) for s in stmt.get("subject") or []]
        if digest.removeprefix("sha256:") not in subjects:
            about = ", ".join(f"sha256:{s}" for s in subjects) or "nothing"
            verdict.problems.append(Problem("subject-mismatch", f"the {name} attestation is about {about}, "
                                            f"not the image's {digest}"))
            continue
        verdict.verified_documents.append(ptype)
        verdict.statements[ptype] = stmt
    for ptype in required:
        if ptype not in seen:
            verdict.problems.append(Problem("missing-attestation", f"no {PREDICATES.get(ptype, ptype)} attestation "
                                            f"for {digest} in {verdict.attestations}"))
    if provenance.PREDICATE_TYPE in verdict.statements:
        verdict.provenance = summary(verdict.statements[provenance.PREDICATE_TYPE])
    return verdict


def summary(stmt: dict[str, Any]) -> dict[str, Any]:
    """What a provenance statement says, in a few lines' worth (pure)."""
    pred = stmt.get("predicate", {})
    build = pred.get("buildDefinition", {})
    run = pred.get("runDetails", {})
    ext = build.get("externalParameters", {})
    internal = build.get("internalParameters", {})
    deps = build.get("resolvedDependencies", [])
    by_name = {d.get("name"): d for d in deps}
    base = by_name.get("base", {})
    return {
        "build_type": build.get("buildType", ""),
        "builder": run.get("builder", {}).get("id", ""),
        "started": run.get("metadata", {}).get("startedOn", ""),
        "finished": run.get("metadata", {}).get("finishedOn", ""),
        "runtime": ext.get("runtime", ""), "version": ext.get("version", ""),
        "options": ext,
        "base": f"{base.get('uri', '')} sha256:{base.get('digest', {}).get('sha256', '')}",
        "sources": internal.get("sources", {}).get("name", ""), "suite": internal.get("suite", ""),
        "revision": internal.get("revision", ""),
        "recipe": internal.get("recipe", {}).get("Dockerfile", {}).get("sha256", ""),
        "packages": sum(1 for d in deps if str(d.get("name", "")).startswith("deb/")),
        "wheels": [d.get("uri", "") for d in deps if str(d.get("name", "")).startswith("wheel/")],
        "aws_cli": by_name.get("aws-cli", {}).get("uri", "") or "the distribution's awscli",
        "cuda": internal.get("cuda", {}).get("version") or "none",
    }


def summary_lines(verdict: Verdict) -> list[str]:
    """Human lines for the verdict."""
    if not verdict.verified:
        lines = [f"not verified ({verdict.reason}): {verdict.problems[0].message}"]
        lines += [f"  also ({p.reason}): {p.message}" for p in verdict.problems[1:]]
        return lines
    if verdict.platforms:
        n = len(verdict.platforms)
        lines = [f"verified {verdict.image.split('@')[0]}@{verdict.digest} (an index of {n} "
                 f"platform{'s' if n != 1 else ''}, each verified)"]
        for entry in verdict.platforms:
            docs = ", ".join(PREDICATES.get(p, p) for p in entry["verified_documents"])
            lines.append(f"  {entry['platform']}: {entry['digest']} signed: {docs}")
        return lines
    docs = ", ".join(PREDICATES.get(p, p) for p in verdict.verified_documents)
    lines = [f"verified {verdict.image.split('@')[0]}@{verdict.digest}", f"  signed: {docs}",
             f"  found:  {verdict.attestations}"]
    p = verdict.provenance
    if p:
        lines += [
            f"  built:  {p['runtime']} {p['version']} by {p['builder']} ({p['started']} .. {p['finished']})",
            f"  from:   {p['base']}", f"  recipe: sha256:{p['recipe']} (ap-build {p['revision'][:12] or '?'})",
            f"  sources {p['sources']}, suite {p['suite']}, CUDA {p['cuda']}, AWS CLI {p['aws_cli']}",
            f"  {p['packages']} apt packages; wheels: {', '.join(p['wheels']) or 'none'}",
        ]
    if verdict.rebuild:
        lines.append(f"  rebuilt from the provenance alone: {verdict.rebuild['image_id']} (the same config digest)")
    return lines
