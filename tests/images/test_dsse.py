"""DSSE envelopes and the cosign attestation layout (pure): PAE, signatures, tampering, manifest shape."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ap_build.errors import UsageError
from ap_build.images import attest, dsse


def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_pae_is_the_dsse_v1_encoding() -> None:
    # the example of the DSSE v1 protocol document
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world")


def test_a_signed_statement_opens_with_its_key_only() -> None:
    k = key()
    stmt = dsse.statement("https://slsa.dev/provenance/v1", {"a": 1}, "reg/x", "sha256:" + "a" * 64)
    env = dsse.sign(stmt, k)
    parsed = json.loads(env)
    assert parsed["payloadType"] == "application/vnd.in-toto+json" and len(parsed["signatures"]) == 1
    assert dsse.open_envelope(env, k.public_key()) == stmt
    with pytest.raises(dsse.EnvelopeError) as wrong:
        dsse.open_envelope(env, key().public_key())
    assert wrong.value.reason == "bad-signature"


def test_a_changed_payload_or_type_no_longer_verifies() -> None:
    k = key()
    env = json.loads(dsse.sign(dsse.statement("p", {"builder": "ci"}, "reg/x", "sha256:" + "a" * 64), k))
    stmt = json.loads(base64.b64decode(env["payload"]))
    stmt["predicate"]["builder"] = "someone else"
    env["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    with pytest.raises(dsse.EnvelopeError) as changed:
        dsse.open_envelope(json.dumps(env).encode(), k.public_key())
    assert changed.value.reason == "bad-signature"
    env["payloadType"] = "text/plain"
    with pytest.raises(dsse.EnvelopeError) as kind:
        dsse.open_envelope(json.dumps(env).encode(), k.public_key())
    assert kind.value.reason == "malformed"
    with pytest.raises(dsse.EnvelopeError):
        dsse.open_envelope(b"not json", k.public_key())


def test_keys_are_read_from_pem_and_must_be_p256(tmp_path) -> None:
    k = key()
    (tmp_path / "k.pem").write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    (tmp_path / "k.pub").write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                                 serialization.PublicFormat.SubjectPublicKeyInfo))
    assert dsse.load_private_key(tmp_path / "k.pem").public_key().public_numbers() == k.public_key().public_numbers()
    assert dsse.load_public_key(tmp_path / "k.pub").public_numbers() == k.public_key().public_numbers()
    other = ec.generate_private_key(ec.SECP384R1())
    (tmp_path / "p384.pem").write_bytes(other.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
    with pytest.raises(UsageError, match="P-256"):
        dsse.load_private_key(tmp_path / "p384.pem")
    with pytest.raises(UsageError, match="cannot read"):
        dsse.load_public_key(tmp_path / "missing.pub")
    (tmp_path / "junk.pub").write_text("junk")
    with pytest.raises(UsageError, match="not a PEM public key"):
        dsse.load_public_key(tmp_path / "junk.pub")


def test_attestation_manifest_is_cosigns_layout() -> None:
    digest = "sha256:" + "b" * 64
    assert attest.att_tag(digest) == "sha256-" + "b" * 64 + ".att"
    layer = attest.layer_descriptor(b"{}", "https://spdx.dev/Document", "sha256:" + "c" * 64)
    assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    assert layer["annotations"] == {"dev.cosignproject.cosign/signature": "", "predicateType": "https://spdx.dev/Document"}
    config = attest.config_blob([layer["digest"]])
    assert json.loads(config)["rootfs"] == {"type": "layers", "diff_ids": [layer["digest"]]}
    body = json.loads(attest.manifest([layer], config, "sha256:" + "d" * 64))
    assert body["mediaType"] == "application/vnd.oci.image.manifest.v1+json" and body["schemaVersion"] == 2
    assert body["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json" and "subject" not in body
    subject = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 9, "digest": digest}
    assert json.loads(attest.manifest([layer], config, "sha256:" + "d" * 64, subject))["subject"] == subject


def test_push_refuses_a_bad_sign_key_before_pushing(cli, tmp_path) -> None:
    (tmp_path / "junk.key").write_text("not a key\n")
    result = cli("image", "push", "localhost/none:1", "127.0.0.1:5000/none:1", "--sign-key", str(tmp_path / "junk.key"))
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and "PEM private key" in result.stderr
    assert "hint: " in result.stderr


def test_registry_auth_challenge_and_stored_credentials(tmp_path) -> None:
    from ap_build.images import regauth

    scheme, params = regauth.parse_challenge(
        'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:org/img:pull"')
    assert scheme == "bearer" and params == {"realm": "https://ghcr.io/token", "service": "ghcr.io",
                                             "scope": "repository:org/img:pull"}
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"https://ghcr.io": {"auth": "dXNlcjpwdw=="}}}))
    env = {"DOCKER_CONFIG": str(tmp_path), "REGISTRY_AUTH_FILE": str(tmp_path / "missing.json")}
    assert regauth.credentials("ghcr.io", env) == "dXNlcjpwdw=="
    assert regauth.credentials("quay.io", env) is None
