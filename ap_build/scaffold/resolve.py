"""Pin `--base-image` as `name:tag@sha256:digest` (a digest is used as given, offline; a tag is resolved)."""

from __future__ import annotations

import contextlib
import hashlib
import re
from typing import Any

import requests

from ap_build.errors import ApBuildError, SourceError, UsageError
from ap_build.reference import parse_ref
from ap_build.scaffold.render import check_pinned, check_reference

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


class NotInRegistry(SourceError):
    """The registry answered: no such repository or tag (no fallback will find it either)."""


def split_registry(name: str) -> tuple[str, str]:
    """(registry host, repository path) of an image name, Docker Hub's defaults included (pure)."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "registry-1.docker.io", name if rest else f"library/{name}"


def _bearer(challenge: str, timeout: float) -> dict[str, str]:
    """Anonymous token for a `WWW-Authenticate: Bearer realm=...,service=...,scope=...` challenge."""
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", None)
    if not realm:
        return {}
    resp = requests.get(realm, params=params, timeout=timeout)
    resp.raise_for_status()
    data = resp.json()
    token = data.get("token") or data.get("access_token")
    return {"Authorization": f"Bearer {token}"} if token else {}


def registry_manifest_digest(ref: str, *, timeout: float = 20) -> str:
    """Ask the registry (Distribution API v2) which manifest digest `name:tag` serves.

    Anonymous (public images; a token is fetched when the registry asks for one). Loopback registries
    are spoken to over plain HTTP. Raises SourceError.
    """
    name, tag, _ = parse_ref(ref)
    host, repo = split_registry(name)
    scheme = "http" if host.split(":")[0] in LOOPBACK or host.startswith("[::1]") else "https"
    url = f"{scheme}://{host}/v2/{repo}/manifests/{tag}"
    headers = {"Accept": MANIFEST_TYPES}
    try:
        resp = requests.head(url, headers=headers, timeout=timeout)
        if resp.status_code == 401 and "bearer" in resp.headers.get("WWW-Authenticate", "").lower():
            headers.update(_bearer(resp.headers["WWW-Authenticate"], timeout))
            resp = requests.head(url, headers=headers, timeout=timeout)
        if resp.status_code == 404:
            raise NotInRegistry(f"{ref}: the registry {host} has no such image or tag")
        resp.raise_for_status()
        digest = resp.headers.get("Docker-Content-Digest")
        if not digest:
            body = requests.get(url, headers=headers, timeout=timeout)
            body.raise_for_status()
            digest = "sha256:" + hashlib.sha256(body.content).hexdigest()
    except requests.RequestException as exc:
        raise SourceError(f"cannot reach the registry {host} for {ref}: {type(exc).__name__}") from exc
    return digest


def needs_resolving(ref: str) -> bool:
    """True for a tag-only reference (pure)."""
    return parse_ref(ref)[2] is None


def pick_repo_digest(ref: str, repo_digests: list[str]) -> str | None:
    """The one digest in an image's RepoDigests that belongs to `ref`'s repository, else None (pure)."""
    name = parse_ref(ref)[0]
    found = {rd.partition("@")[2] for rd in repo_digests if rd.partition("@")[0] == name}
    return found.pop() if len(found) == 1 else None


def resolve_base_image(ref: str, engine: Any = None) -> str:
    """Return `ref` pinned by tag and digest.

    A reference that carries a digest is checked and returned unchanged (no network). A tag-only one is
    asked of its registry (HTTP API v2), then of the engine's distribution endpoint; as a last resort the
    image is pulled and its RepoDigests read (used only if they name exactly one digest: Podman keeps
    several). Raises UsageError (bad reference) or SourceError (cannot resolve).
    """
    check_reference(ref)
    name, tag, digest = parse_ref(ref)
    if digest is not None:
        check_pinned(ref)
        return ref
    if not tag:
        raise UsageError(
            f"--base-image {ref!r} has no tag",
            hint="give name:tag (resolved to a digest) or name:tag@sha256:digest",
        )
    first_error = "the registry reported no digest"
    try:
        found: str | None = registry_manifest_digest(ref)
    except NotInRegistry as exc:
        raise SourceError(
            f"cannot resolve --base-image {ref} to a digest: {exc.message}",
            hint="check the name and tag, or pass name:tag@sha256:digest to work offline",
        ) from exc
    except SourceError as exc:
        first_error = exc.message
        found = None
    if not found:
        found = _digest_from_engine(ref, engine, first_error)
    if not found:
        raise SourceError(
            f"cannot resolve --base-image {ref} to a digest: the registry reported none",
            hint="pass name:tag@sha256:digest",
        )
    pinned = f"{name}:{tag}@{found}"
    check_pinned(pinned)
    return pinned


def _digest_from_engine(ref: str, engine: Any, first_error: str) -> str | None:
    """The digest of `ref` as the engine finds it: its distribution endpoint, else a pull and the one
    RepoDigest naming it (SourceError, with the registry's own error, when the pull fails)."""
    if engine is None:
        from ap_build.engine import Engine

        engine = Engine.connect()
    with contextlib.suppress(ApBuildError):
        if found := engine.registry_digest(ref):
            return found
    try:
        engine.pull(ref)
        return pick_repo_digest(ref, engine.inspect(ref).get("RepoDigests") or [])
    except ApBuildError as exc:
        raise SourceError(
            f"cannot resolve --base-image {ref} to a digest: {first_error}",
            hint="check the name and tag, or pass name:tag@sha256:digest to work offline",
        ) from exc
