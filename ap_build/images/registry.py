"""A small OCI distribution client (`requests`): manifests, blobs, tags and the OCI 1.1 referrers API.

Enough to attach and read cosign-style attestations: anonymous, or with the credentials `podman login` /
`docker login` stored (Basic, or a Bearer token from the registry's token service: `regauth.py`); plain HTTP
only for loopback hosts. Every failure is a SourceError (exit 2).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import requests

from ap_build.errors import SourceError, UsageError
from ap_build.images.regauth import authorization, credentials
from ap_build.reference import is_reference, parse_ref

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
OCI_MANIFEST = MANIFEST_TYPES[0]


@dataclass(frozen=True)
class Reference:
    host: str
    repo: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, ref: str) -> Reference:
        if not is_reference(ref):
            raise UsageError(f"{ref!r} is not an image reference",
                             hint="give REGISTRY/NAME:TAG or REGISTRY/NAME@sha256:...")
        name, tag, digest = parse_ref(ref)
        first, _, rest = name.partition("/")
        if not rest or not ("." in first or ":" in first or first == "localhost"):
            raise UsageError(f"{ref} names no registry host",
                             hint="give REGISTRY/NAME:TAG, e.g. 127.0.0.1:5000/ap/python-base:1.0")
        return cls(first, rest, tag, digest)

    @property
    def name(self) -> str:
        return f"{self.host}/{self.repo}"


def _is_loopback(host: str) -> bool:
    h = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return h in ("localhost", "[::1]") or h.startswith("127.")


class Registry:
    """One registry host, one `requests` session (keep-alive: a verify makes a handful of calls)."""

    def __init__(self, host: str, *, timeout: float = 30) -> None:
        self.host = host
        self.base = f"{'http' if _is_loopback(host) else 'https'}://{host}/v2"
        self.session = requests.Session()
        self.timeout = timeout

    def _call(self, method: str, url: str, **kw: Any) -> requests.Response:
        """One request; a 401 is answered once (Basic, or a Bearer token: anonymous or with stored credentials)."""
        for attempt in (1, 2):
            try:
                resp = self.session.request(method, url, timeout=self.timeout, **kw)
            except requests.RequestException as exc:
                raise SourceError(f"registry {self.host} does not answer: {exc}",
                                  hint="check the registry address and that it is running") from exc
            if resp.status_code != 401:
                return resp
            answer = authorization(self.session, resp.headers.get("WWW-Authenticate", ""),
                                   credentials(self.host), self.timeout) if attempt == 1 else None
            if answer is None:
                break
            self.session.headers["Authorization"] = answer
        raise SourceError(f"registry {self.host} refused access ({method} {url.removeprefix(self.base)})",
                          hint=f"log in first (podman login {self.host} / docker login {self.host}), or check "
                          "the repository's permissions")

    def manifest(self, repo: str, ref: str) -> tuple[bytes, str, str] | None:
        """(bytes, media type, digest) of a manifest by tag or digest; None if the registry has none."""
        resp = self._call("GET", f"{self.base}/{repo}/manifests/{ref}", headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise SourceError(f"registry {self.host} answered {resp.status_code} for {repo}:{ref}")
        digest = "sha256:" + hashlib.sha256(resp.content).hexdigest()
        if ref.startswith("sha256:") and ref != digest:
            raise SourceError(f"registry {self.host} served manifest {digest} for {ref}")
        return resp.content, resp.headers.get("Content-Type", "").split(";")[0], digest

    def resolve(self, ref: Reference) -> str:
        """The manifest digest of `ref` (its digest if it carries one and the registry has it)."""
        got = self.manifest(ref.repo, ref.digest or ref.tag or "latest")
        if got is None:
            raise SourceError(f"{ref.name}:{ref.tag or ''}{'@' + ref.digest if ref.digest else ''} is not in "
                              f"registry {self.host}", hint="check the reference, or push the image first")
        return got[2]

    def blob(self, repo: str, digest: str) -> bytes:
        """A blob, checked against its digest."""
        resp = self._call("GET", f"{self.base}/{repo}/blobs/{digest}")
        if resp.status_code != 200:
            raise SourceError(f"registry {self.host} answered {resp.status_code} for blob {digest}")
        if "sha256:" + hashlib.sha256(resp.content).hexdigest() != digest:
            raise SourceError(f"registry {self.host} served blob content that is not {digest}")
        return resp.content

    def put_blob(self, repo: str, data: bytes) -> str:
        """Upload `data` (monolithic upload) unless the registry has it; return its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self._call("HEAD", f"{self.base}/{repo}/blobs/{digest}").status_code == 200:
            return digest
        start = self._call("POST", f"{self.base}/{repo}/blobs/uploads/")
        location = start.headers.get("Location", "")
        if start.status_code != 202 or not location:
            raise SourceError(f"registry {self.host} refused an upload to {repo} ({start.status_code})")
        if location.startswith("/"):
            location = self.base.removesuffix("/v2") + location
        sep = "&" if "?" in location else "?"
        done = self._call("PUT", f"{location}{sep}digest={digest}", data=data,
                          headers={"Content-Type": "application/octet-stream"})
        if done.status_code != 201:
            raise SourceError(f"registry {self.host} refused blob {digest} ({done.status_code}: {done.text[:200]})")
        return digest

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str = OCI_MANIFEST) -> str:
        resp = self._call("PUT", f"{self.base}/{repo}/manifests/{ref}", data=data, headers={"Content-Type": media_type})
        if resp.status_code != 201:
            raise SourceError(f"registry {self.host} refused manifest {repo}:{ref} ({resp.status_code}: "
                              f"{resp.text[:200]})")
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def referrers(self, repo: str, digest: str) -> list[dict[str, Any]] | None:
        """The OCI 1.1 referrers of `digest`, or None where the registry has no referrers API."""
        resp = self._call("GET", f"{self.base}/{repo}/referrers/{digest}")
        if resp.status_code != 200 or "json" not in resp.headers.get("Content-Type", ""):
            return None
        try:
            return list(json.loads(resp.content).get("manifests") or [])
        except (ValueError, AttributeError):
            return None
