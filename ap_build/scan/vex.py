"""OpenVEX documents from ap-build's exceptions (pure), in the shape Trivy's VEX matching needs.

Trivy (pkg/vex) settles a finding when a statement names its vulnerability with status `not_affected` or
`fixed` and a product that is either the affected package's PURL, or the image's PURL (`pkg:oci/NAME@
DIGEST`, from the image's repository digest) with the package's PURL as a subcomponent. So an exception
is exported, for one image, as a statement naming the image (when it has a digest) and exactly the
packages it ignores there, plus each of those packages as a product of its own (Trivy settles a package
that other packages depend on only through its own PURL): Trivy run with the document gives the same
verdict as ap-build with the original ignore files. OpenVEX has no expiry: expired exceptions are not
exported, and an exception's expiry and origin are recorded in `status_notes`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ap_build.scan.convert import is_secret_rule
from ap_build.scan.ignores import IgnoreEntry

CONTEXT = "https://openvex.dev/ns/v0.2.0"
AUTHOR = "ap-build exceptions export"


def image_purl(report: dict[str, Any]) -> str | None:
    """The image's PURL as Trivy computes it (`pkg:oci/NAME@sha256:...`), or None without a repo digest."""
    meta = report.get("Metadata") or {}
    digests = meta.get("RepoDigests") or []
    if not digests or "@" not in digests[0]:
        return None
    repo, digest = digests[0].rsplit("@", 1)
    name = repo.rsplit("/", 1)[-1].lower()
    return f"pkg:oci/{quote(name)}@{quote(digest, safe=':')}"


def statement(e: IgnoreEntry, vuln_id: str, purls: list[str], product: str | None, today: dt.date) -> dict[str, Any]:
    """One `not_affected` statement for exception `e` and `vuln_id` over the packages `purls`."""
    notes = f"ap-build exception {e.where}" + (f", expires {e.expires.isoformat()}" if e.expires else "")
    st: dict[str, Any] = {
        "vulnerability": {"name": vuln_id},
        "status": "not_affected",
        "impact_statement": e.statement or f"accepted exception ({e.where}), no reason given",
        "status_notes": notes,
    }
    if product and purls:
        # the image with its packages, and each package on its own: Trivy walks the package graph from a
        # finding up to the image, and a package that others depend on (zlib1g, tar) is settled by the
        # image's statement only on paths through the image; the package's own PURL settles it on all
        st["products"] = [{"@id": product, "subcomponents": [{"@id": p} for p in purls]},
                          *({"@id": p} for p in purls)]
    elif purls:
        st["products"] = [{"@id": p} for p in purls]
    return st


def openvex_document(
    entries: list[IgnoreEntry],
    found: dict[int, list[Any]] | None,
    *,
    product: str | None,
    today: dt.date,
    now: dt.datetime,
) -> tuple[dict[str, Any], list[str]]:
    """The OpenVEX document for `entries` (active vulnerability exceptions only) and what was left out.

    `found[i]`: the findings entry i ignores in the image (from a scan); without it, statements carry the
    entries' own PURLs (Trivy cannot match a statement without products).
    """
    statements: list[dict[str, Any]] = []
    skipped: list[str] = []
    for i, e in enumerate(entries):
        if e.section != "vulnerabilities" or is_secret_rule(e):
            skipped.append(f"{e.where}: {e.id} is not a vulnerability exception; OpenVEX covers vulnerabilities")
            continue
        if e.expires is not None and today >= e.expires:
            skipped.append(f"{e.where}: {e.id} expired on {e.expires}; it ignores nothing, not exported")
            continue
        if found is not None:
            hits = [f for f in found.get(i, []) if f.kind == "vulnerability"]
            if not hits:
                skipped.append(f"{e.where}: {e.id} ignores nothing in the image (stale), not exported")
                continue
            by_id: dict[str, list[str]] = {}
            for f in hits:
                by_id.setdefault(f.id, [])
                if f.purl and f.purl not in by_id[f.id]:
                    by_id[f.id].append(f.purl)
            statements += [statement(e, vid, purls, product, today) for vid, purls in sorted(by_id.items())]
            continue
        if e.rule is not None and not e.rule.vulnerability:
            skipped.append(f"{e.where}: a rule without a vulnerability ID {e.id}: pass --image")
            continue
        vid = e.rule.vulnerability if e.rule is not None else e.id
        st = statement(e, vid, list(e.purls), None, today)
        if "products" not in st:
            skipped.append(f"{e.where}: {vid} names no package: Trivy cannot match it without --image")
        statements.append(st)
    stamp = now.astimezone(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")  # noqa: UP017
    body = json.dumps(statements, sort_keys=True).encode()
    doc = {
        "@context": CONTEXT,
        "@id": f"https://openvex.dev/docs/public/ap-build-{hashlib.sha256(body).hexdigest()[:32]}",
        "author": AUTHOR,
        "timestamp": stamp,
        "version": 1,
        "tooling": "ap-build",
        "statements": statements,
    }
    return doc, skipped


MAX_VEX_BYTES = 64 * 1024 * 1024


def check_vex_file(path: Path) -> str:
    """The format of a VEX document Trivy can apply to an image scan (`openvex` or `csaf`); UsageError else.

    Trivy applies CycloneDX VEX only to a CycloneDX SBOM scan (it refuses it for an image), so it is
    refused here with what to use instead, before the scan."""
    from ap_build.errors import UsageError

    hint = "for an image pass OpenVEX (`ap-build exceptions export --format openvex --image IMAGE` writes one) or CSAF"
    from ap_build.scan.inputs import InputError, load_json, read_regular

    try:
        doc = load_json(read_regular(path, MAX_VEX_BYTES))
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: no such VEX document", hint=hint) from exc
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the VEX document ({exc.strerror or exc})", hint=hint) from exc
    except InputError as exc:
        raise UsageError(f"{path}: not a readable JSON VEX document ({exc})", hint=hint) from exc
    if isinstance(doc, dict) and str(doc.get("@context", "")).startswith("https://openvex.dev/ns"):
        return "openvex"
    if isinstance(doc, dict) and isinstance(doc.get("document"), dict) and "csaf_version" in doc["document"]:
        return "csaf"
    if isinstance(doc, dict) and doc.get("bomFormat") == "CycloneDX":
        raise UsageError(f"{path}: CycloneDX VEX: Trivy applies it only when scanning a CycloneDX SBOM, "
                         "not an image", hint=hint)
    raise UsageError(f"{path}: neither OpenVEX (@context https://openvex.dev/ns/...) nor CSAF", hint=hint)
