"""A Trivy vulnerability DB for tests, written from a short declarative list of advisories.

Usage (any job's tests; `tests/` is on sys.path under pytest, so import it as `support.trivydb`)::

    from support.trivydb import Advisory, write_trivy_db

    cache = write_trivy_db(tmp_path / "trivy-cache", [
        Advisory("CVE-2099-0001", "zlib", "HIGH", fixed_version="1:99.0-1"),     # fixable HIGH
        Advisory("CVE-2099-0002", "openssl", "CRITICAL"),                         # unfixed CRITICAL
        Advisory("GHSA-xxxx-yyyy-zzzz", "requests", "HIGH", fixed_version="99.0",
                 ecosystem="pip", vulnerable=["<99.0"]),                         # a language package
    ])
    # then: trivy image --cache-dir {cache} --skip-db-update ...  (or ap-build scan --cache-dir {cache})

`write_trivy_db(cache_dir, advisories=(), *, fresh=True) -> Path` creates `<cache_dir>/db/trivy.db` and
`<cache_dir>/db/metadata.json` and returns `cache_dir`. An empty list gives a valid DB with no
findings (what scaffold/images e2e tests want for a clean scan). `fresh=True` writes `NextUpdate`
far in the future so Trivy does not try to download even without `--skip-db-update`;
`fresh=False` writes only `{"Version": 2}` (usable with `--skip-db-update` only).

Always write a NEW cache dir per test: Trivy may delete a DB it fails to open.

Layout (see /work/shared/notes/trivy-offline.md): OS advisories live in bucket `"debian <major>"` ->
SOURCE package name (`zlib`, not `zlib1g`) -> ID -> `{"FixedVersion"}` or `{"Status": 2}` (affected,
no fix); details in bucket `"vulnerability"` -> ID. Language advisories live in
`"<ecosystem>::GitHub Security Advisory <Eco>"` -> package -> ID -> `{"PatchedVersions",
"VulnerableVersions"}`. The PyPI `boltdb` writer leaves the bbolt meta-page checksums at 0; this
module rewrites them (FNV-1a 64 over the first 56 bytes of each meta).
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SEVERITIES = ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")
# Trivy looks Debian up by major version: the bootstrapped bases are trixie (default) or bookworm
DEBIAN_BUCKETS = ("debian 12", "debian 13")
_CVSS_SCORE = {"UNKNOWN": 0.0, "LOW": 3.1, "MEDIUM": 5.3, "HIGH": 7.5, "CRITICAL": 9.8}
_ECOSYSTEM_SOURCE = {
    "pip": "GitHub Security Advisory pip",
    "npm": "GitHub Security Advisory npm",
    "cran": "GitHub Security Advisory CRAN",
}
PAGE_SIZE = 4096


@dataclass(frozen=True)
class Advisory:
    """One advisory: `vuln_id` affects `package` (Debian SOURCE package, or a language package)."""

    vuln_id: str
    package: str
    severity: str = "HIGH"
    fixed_version: str | None = None  # None = no fix available (status "affected")
    bucket: str | None = None  # OS bucket ("debian 13"); None: every Debian release the tests build
    ecosystem: str | None = None  # "pip", "npm", ... for language packages
    vulnerable: list[str] = field(default_factory=list)  # language only, e.g. ["<2.0.0"]
    title: str = ""


def _fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def fix_meta_checksums(db_file: Path) -> None:
    """Write the FNV-1a 64 checksum bbolt expects into both meta pages (boltdb 0.0.2 leaves them 0)."""
    with db_file.open("r+b") as fh:
        for page in (0, 1):
            base = page * PAGE_SIZE + 16
            fh.seek(base)
            meta = fh.read(56)
            fh.seek(base + 56)
            fh.write(struct.pack("<Q", _fnv1a64(meta)))


def _vulnerability(a: Advisory) -> dict:
    sev = a.severity.upper()
    level = SEVERITIES.index(sev)
    return {
        "Title": a.title or f"{a.package}: test advisory {a.vuln_id}",
        "Description": f"Fixture advisory {a.vuln_id} for {a.package} written by tests/support/trivydb.py.",
        "Severity": sev,
        "VendorSeverity": {"debian": level, "nvd": level, "ghsa": level},
        "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", "V3Score": _CVSS_SCORE[sev]}},
        "References": [f"https://example.invalid/advisories/{a.vuln_id}"],
        "PublishedDate": "2026-01-01T00:00:00Z",
        "LastModifiedDate": "2026-01-01T00:00:00Z",
    }


def plan_buckets(advisories: Iterable[Advisory]) -> dict[str, dict[str, dict[str, dict]]]:
    """{bucket: {package: {id: advisory JSON}}} plus the flat `vulnerability` bucket (pure)."""
    buckets: dict[str, dict] = {"vulnerability": {}}
    sources: dict[str, dict] = {}
    for a in advisories:
        if a.severity.upper() not in SEVERITIES:
            raise ValueError(f"{a.vuln_id}: severity must be one of {SEVERITIES}")
        if a.ecosystem:
            source = _ECOSYSTEM_SOURCE.get(a.ecosystem, f"GitHub Security Advisory {a.ecosystem}")
            name = f"{a.ecosystem}::{source}"
            adv: dict = {
                "VulnerableVersions": a.vulnerable or ([f"<{a.fixed_version}"] if a.fixed_version else [">=0"])
            }
            if a.fixed_version:
                adv["PatchedVersions"] = [a.fixed_version]
            sources[name] = {
                "ID": "ghsa",
                "Name": name.split("::", 1)[1],
                "URL": "https://github.com/advisories",
            }
        else:
            adv = {"FixedVersion": a.fixed_version} if a.fixed_version else {"Status": 2}
            for name in (a.bucket,) if a.bucket else DEBIAN_BUCKETS:
                sources[name] = {
                    "ID": "debian",
                    "Name": "Debian Security Tracker",
                    "URL": "https://salsa.debian.org/security-tracker-team/security-tracker",
                }
                buckets.setdefault(name, {}).setdefault(a.package, {})[a.vuln_id] = adv
            buckets["vulnerability"][a.vuln_id] = _vulnerability(a)
            continue
        buckets.setdefault(name, {}).setdefault(a.package, {})[a.vuln_id] = adv
        buckets["vulnerability"][a.vuln_id] = _vulnerability(a)
    buckets["data-source"] = sources
    return buckets


def write_trivy_db(cache_dir: Path, advisories: Iterable[Advisory] = (), *, fresh: bool = True) -> Path:
    """Write a Trivy DB holding exactly `advisories` into `<cache_dir>/db/`; return `cache_dir`."""
    from boltdb import BoltDB

    cache_dir = Path(cache_dir)
    db_dir = cache_dir / "db"
    db_dir.mkdir(parents=True, exist_ok=True)
    db_file = db_dir / "trivy.db"
    if db_file.exists():
        db_file.unlink()
    plan = plan_buckets(list(advisories))
    db = BoltDB(str(db_file))
    try:
        with db.update() as tx:
            for bucket_name, content in sorted(plan.items()):
                top = tx.create_bucket(bucket_name.encode())
                for key, value in sorted(content.items()):
                    if bucket_name in ("vulnerability", "data-source"):
                        top.put(key.encode(), json.dumps(value).encode())
                        continue
                    pkg = top.create_bucket(key.encode())
                    for vid, adv in sorted(value.items()):
                        pkg.put(vid.encode(), json.dumps(adv).encode())
    finally:
        db.close()
        db.close = lambda: None  # boltdb's __del__ closes again and would raise on the closed fd
    fix_meta_checksums(db_file)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)  # noqa: UP017 (py3.10)
    meta: dict = {"Version": 2}
    if fresh:
        meta |= {
            "NextUpdate": "2099-01-01T00:00:00Z",
            "UpdatedAt": now.isoformat().replace("+00:00", "Z"),
            "DownloadedAt": now.isoformat().replace("+00:00", "Z"),
        }
    (db_dir / "metadata.json").write_text(json.dumps(meta))
    return cache_dir
