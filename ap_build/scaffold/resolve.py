"""Pin `--base-image` as `name:tag@sha256:digest` (a digest is used as given, offline; a tag is resolved)."""

from __future__ import annotations

from typing import Any

from ap_build.errors import ApBuildError, SourceError, UsageError
from ap_build.scaffold.render import check_pinned, parse_ref


def needs_resolving(ref: str) -> bool:
    """True for a tag-only reference (pure)."""
    return parse_ref(ref)[2] is None


def pick_repo_digest(ref: str, repo_digests: list[str]) -> str | None:
    """The digest in an image's RepoDigests that belongs to `ref`'s repository (pure)."""
    name = parse_ref(ref)[0]
    for rd in repo_digests:
        rd_name, _, digest = rd.partition("@")
        if rd_name == name or rd_name.endswith("/" + name) or name.endswith("/" + rd_name):
            return digest
    return None


def resolve_base_image(ref: str, engine: Any = None) -> str:
    """Return `ref` pinned by tag and digest.

    A reference that carries a digest is checked and returned unchanged (no network). A tag-only one is
    asked of its registry through the engine; if the registry cannot answer that way, the image is
    pulled and its RepoDigests read. Raises UsageError (bad reference) or SourceError (cannot resolve).
    """
    name, tag, digest = parse_ref(ref)
    if digest is not None:
        check_pinned(ref)
        return ref
    if not tag:
        raise UsageError(
            f"--base-image {ref!r} has no tag",
            hint="give name:tag (resolved to a digest) or name:tag@sha256:digest",
        )
    if engine is None:
        from ap_build.engine import Engine

        engine = Engine.connect()
    try:
        found = engine.registry_digest(ref)
    except ApBuildError:
        found = None
    if not found:
        try:
            engine.pull(ref)
            found = pick_repo_digest(ref, engine.inspect(ref).get("RepoDigests") or [])
        except ApBuildError as exc:
            raise SourceError(
                f"cannot resolve --base-image {ref} to a digest: {exc.message}",
                hint="check the name and tag, or pass name:tag@sha256:digest to work offline",
            ) from exc
    if not found:
        raise SourceError(
            f"cannot resolve --base-image {ref} to a digest: the registry reported none",
            hint="pass name:tag@sha256:digest",
        )
    pinned = f"{name}:{tag}@{found}"
    check_pinned(pinned)
    return pinned
