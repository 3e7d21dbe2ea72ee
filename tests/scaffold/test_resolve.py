"""Pure parts of base-image resolution (the registry round trip is in test_e2e.py)."""

from __future__ import annotations

import re

from ap_build.scaffold import resolve
from ap_build.scaffold.resolve import needs_resolving, pick_repo_digest, split_registry

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def test_split_registry() -> None:
    assert split_registry("python") == ("registry-1.docker.io", "library/python")
    assert split_registry("team/app") == ("registry-1.docker.io", "team/app")
    assert split_registry("ghcr.io/ministryofjustice/x") == ("ghcr.io", "ministryofjustice/x")
    assert split_registry("127.0.0.1:5000/ap-build/python-base") == ("127.0.0.1:5000", "ap-build/python-base")
    assert split_registry("localhost/x") == ("localhost", "x")


def test_needs_resolving() -> None:
    assert needs_resolving("ghcr.io/a/b:1.0")
    assert not needs_resolving(f"ghcr.io/a/b:1.0@{D1}")


def test_repo_digests_are_used_only_when_unambiguous() -> None:
    ref = "127.0.0.1:5000/ap/python:1"
    assert pick_repo_digest(ref, [f"127.0.0.1:5000/ap/python@{D1}", f"localhost/ap/python@{D2}"]) == D1
    # Podman keeps a digest per manifest format: two for one repository is ambiguous.
    assert pick_repo_digest(ref, [f"127.0.0.1:5000/ap/python@{D1}", f"127.0.0.1:5000/ap/python@{D2}"]) is None
    assert pick_repo_digest(ref, []) is None


def test_bearer_challenge_is_parsed(monkeypatch) -> None:
    seen = {}

    class Resp:
        def raise_for_status(self) -> None: ...
        def json(self) -> dict[str, str]:
            return {"token": "t0k"}

    def fake_get(url: str, params: dict[str, str], timeout: float) -> Resp:
        seen.update(url=url, params=params)
        return Resp()

    monkeypatch.setattr(resolve.requests, "get", fake_get)
    headers = resolve._bearer('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"', 5)
    assert headers == {"Authorization": "Bearer t0k"}
    assert seen == {"url": "https://ghcr.io/token", "params": {"service": "ghcr.io", "scope": "repository:a/b:pull"}}
    assert re.match(r"^application/vnd\.oci\.image\.index", resolve.MANIFEST_TYPES)
