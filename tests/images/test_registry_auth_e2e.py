"""Attestations on a registry that asks for credentials: a real Debian `docker-registry` with htpasswd (Basic)
auth, started for this module. Without credentials: exit-2 error naming `podman login`; with the ones
`podman login` stores (REGISTRY_AUTH_FILE), attach and verify work."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ap_build.errors import SourceError
from ap_build.images import attest, dsse, provenance
from ap_build.images.registry import Registry
from ap_build.images.verify import verify

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # bcrypt hashes for htpasswd (libxcrypt); deprecated since 3.11, still shipped

pytestmark = [pytest.mark.e2e]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(host, base64 user:password) of a registry with Basic auth, stopped (by its PID) afterwards."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed: run scripts/setup.sh")
    folder = tmp_path_factory.mktemp("auth-registry")
    (folder / "htpasswd").write_text(f"ci:{crypt.crypt('secret', crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))}\n")
    port = free_port()
    (folder / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: " + str(folder / "data")
        + f"\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: test\n    path: "
        + str(folder / "htpasswd") + "\n")
    proc = subprocess.Popen([binary, "serve", str(folder / "config.yml")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    break
            except OSError:
                time.sleep(0.1)
        yield f"127.0.0.1:{port}", base64.b64encode(b"ci:secret").decode()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_no_credentials_is_a_could_not_run_naming_login(auth_registry: tuple[str, str], monkeypatch,
                                                        tmp_path: Path) -> None:
    host, _ = auth_registry
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "none.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    with pytest.raises(SourceError) as refused:
        Registry(host).manifest("ap/x", "1")
    assert refused.value.exit_code == 2 and "podman login" in (refused.value.hint or "")


def test_attach_and_verify_with_stored_credentials(auth_registry: tuple[str, str], monkeypatch,
                                                   tmp_path: Path) -> None:
    host, creds = auth_registry
    (tmp_path / "auth.json").write_text(json.dumps({"auths": {host: {"auth": creds}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    reg = Registry(host)
    # a small image: one layer, its config, the manifest
    layer = b"layer bytes"
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}})
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config),
                                      "digest": reg.put_blob("ap/base", config.encode())},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": len(layer),
                                       "digest": reg.put_blob("ap/base", layer)}]}).encode()
    digest = reg.put_manifest("ap/base", "1", manifest)
    key = ec.generate_private_key(ec.SECP256R1())
    name = f"{host}/ap/base"
    statements = [dsse.statement(provenance.PREDICATE_TYPE, {"buildDefinition": {}, "runDetails": {}}, name, digest),
                  dsse.statement(attest.SPDX, {"spdxVersion": "SPDX-2.3"}, name, digest),
                  dsse.statement(attest.CYCLONEDX, {"bomFormat": "CycloneDX"}, name, digest)]
    attest.attach(reg, "ap/base", digest, [(s["predicateType"], dsse.sign(s, key)) for s in statements])
    pub = tmp_path / "k.pub"
    from cryptography.hazmat.primitives import serialization

    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    verdict = verify(f"{name}:1", pub)
    assert verdict.verified, verdict.problems
    assert verdict.digest == digest and len(verdict.verified_documents) == 3
