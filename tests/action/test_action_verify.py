"""The action's `image verify` (what the reusable release workflow runs on a repository's base before building):
an image on the loopback registry with signed attestations passes with the platform's key and fails, exit 1
with the reason in the summary, with another key; an image without attestations fails."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from action.test_action import run
from ap_build.images import attest, dsse, provenance
from ap_build.images.registry import OCI_MANIFEST, Registry

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine")]  # shares the session's installed action


def push_tiny_image(registry: str, repo: str) -> str:
    """A one-layer OCI image written straight to the registry; `host/repo:tag@sha256:...`."""
    reg = Registry(registry)
    layer = b"\0" * 1024  # an empty tar
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"]}}).encode()
    layer_digest, config_digest = reg.put_blob(repo, layer), reg.put_blob(repo, config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": attest.CONFIG_MEDIA_TYPE, "size": len(config),
                                      "digest": config_digest},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": len(layer),
                                       "digest": layer_digest}]}).encode()
    digest = reg.put_manifest(repo, "1", manifest)
    return f"{registry}/{repo}:1@{digest}"


def sign_attestations(pinned: str, key: ec.EllipticCurvePrivateKey) -> None:
    """The three documents `image push --sign-key` attaches, signed with `key` (their content is not checked)."""
    name, digest = pinned.split("@")
    host, repo = name.split("/", 1)
    repo = repo.rsplit(":", 1)[0]
    predicate = {"buildDefinition": {"buildType": "test", "externalParameters": {"runtime": "python"}},
                 "runDetails": {"builder": {"id": "https://ap-build.test"}}}
    docs = {provenance.PREDICATE_TYPE: predicate, attest.SPDX: {"spdxVersion": "SPDX-2.3"},
            attest.CYCLONEDX: {"bomFormat": "CycloneDX"}}
    envelopes = [(p, dsse.sign(dsse.statement(p, d, f"{host}/{repo}", digest), key)) for p, d in docs.items()]
    attest.attach(Registry(host), repo, digest, envelopes)


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_image_verify_through_the_action(action_dir, runner_temp, registry: str, tmp_path: Path) -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    run_id = uuid.uuid4().hex[:8]
    signed = push_tiny_image(registry, f"ap-build-action-verify/signed-{run_id}")
    sign_attestations(signed, key)
    bare = push_tiny_image(registry, f"ap-build-action-verify/bare-{run_id}")
    repo = tmp_path / "repo"
    (repo / ".ap-build").mkdir(parents=True)
    (repo / ".ap-build/base-signing.pub").write_bytes(public_pem(key))
    (repo / "other.pub").write_bytes(public_pem(other))

    res = run(action_dir, runner_temp, repo, command="image verify", image=signed,
              args="--key .ap-build/base-signing.pub")
    assert res.outcome == "success" and res.exit_code == 0, res.log
    assert res.outputs["verdict"] == "passed"
    verdict = json.loads(Path(res.outputs["json"]).read_text())
    assert verdict["verified"] and verdict["digest"] == signed.split("@")[1]
    assert "### ap-build image verify ✅ passed" in res.summary and "verified." in res.summary

    res = run(action_dir, runner_temp, repo, command="image verify", image=signed, args="--key other.pub")
    assert res.outcome == "failure" and res.exit_code == 1, res.log
    assert res.outputs["verdict"] == "failed" and "NOT verified: bad-signature" in res.summary

    res = run(action_dir, runner_temp, repo, command="image verify", image=bare,
              args="--key .ap-build/base-signing.pub")
    assert res.exit_code == 1 and "NOT verified: missing-attestation" in res.summary, res.log
