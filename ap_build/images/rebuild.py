"""`image verify --rebuild`: build the image again from its verified provenance alone and compare digests.

The rebuild takes every option from the provenance's `externalParameters` (with `--no-cache` and
`--reproducible`), and needs ap-build at the provenance's revision (the recipe is part of the input). It
compares the rebuilt image's config digest (its image ID) with the pushed image's, and their layers' diff IDs
one by one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ap_build.errors import UsageError
from ap_build.images.registry import Reference, Registry


@dataclass
class Rebuilt:
    image_id: str  # the rebuilt image's config digest
    expected: str  # the pushed image's config digest
    layers_differ: list[int] = field(default_factory=list)  # indexes of layers whose diff IDs differ

    @property
    def same(self) -> bool:
        return self.image_id == self.expected and not self.layers_differ


def pushed_config(image: str, digest: str) -> tuple[str, list[str]]:
    """(config digest, diff IDs) of the pushed image `digest` (a single-platform manifest)."""
    ref = Reference.parse(image)
    reg = Registry(ref.host)
    got = reg.manifest(ref.repo, digest)
    if got is None:
        raise UsageError(f"{image} has no manifest {digest}")
    body = json.loads(got[0])
    if "config" not in body:
        raise UsageError(f"{image}@{digest} is an index, not one image", hint="verify one platform's digest")
    config_digest = str(body["config"]["digest"])
    config = json.loads(reg.blob(ref.repo, config_digest))
    return config_digest, list(config.get("rootfs", {}).get("diff_ids") or [])


def request_from(stmt: dict[str, Any], tag: str) -> Any:
    """The BuildRequest the provenance records (pure), as a no-cache reproducible build tagged `tag`."""
    from ap_build.images.pipeline import BuildRequest

    ext = stmt["predicate"]["buildDefinition"]["externalParameters"]
    known = set(BuildRequest.__dataclass_fields__)
    args = {k: v for k, v in ext.items() if k in known and k not in ("tag", "ignore_file", "nocache", "reproducible")}
    ignore = str(ext.get("ignore_file") or "")
    return BuildRequest(**args, tag=tag, ignore_file=Path(ignore) if ignore else None, nocache=True,
                        reproducible=True)


def rebuild(engine: Any, image: str, digest: str, stmt: dict[str, Any],
            say: Callable[[str], None] | None = None, on_line: Callable[[str], None] | None = None) -> Rebuilt:
    """Build again from `stmt` (a verified provenance) and compare with the pushed `digest`."""
    from ap_build.images import pipeline
    from ap_build.images.build import git_revision

    build_def = stmt["predicate"]["buildDefinition"]
    revision = build_def.get("internalParameters", {}).get("revision", "")
    here = git_revision()[0]
    if revision and revision != here:
        raise UsageError(f"the image was built by ap-build at {revision[:12]}, this is {here[:12] or 'not a checkout'}",
                         hint=f"rebuild from a checkout of that revision (git checkout {revision[:12]})")
    expected, diff_ids = pushed_config(image, digest)
    request = request_from(stmt, f"localhost/ap-build/rebuild:{digest.removeprefix('sha256:')[:16]}")
    epoch = str(build_def["externalParameters"].get("source_date_epoch") or "")
    saved = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        os.environ["SOURCE_DATE_EPOCH"] = epoch
    else:
        os.environ.pop("SOURCE_DATE_EPOCH", None)
    try:
        result = pipeline.build(request, engine, say=say, on_line=on_line)
    finally:
        if saved is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = saved
    layers = list(engine.inspect(result.image_id)["RootFS"]["Layers"] or [])
    differ = [i for i in range(max(len(layers), len(diff_ids)))
              if i >= len(layers) or i >= len(diff_ids) or layers[i] != diff_ids[i]]
    return Rebuilt(image_id=result.image_id, expected=expected, layers_differ=differ)
