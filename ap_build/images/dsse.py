"""DSSE envelopes of in-toto statements, signed with ECDSA P-256 (`cryptography`), as cosign writes them.

The signature is over DSSE v1's pre-authentication encoding (PAE) of the payload type and the payload,
ECDSA P-256 with SHA-256, DER-encoded: what `cosign verify-attestation --key` checks. Pure apart from
reading key files.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ap_build.errors import UsageError

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PASSWORD_ENV = "AP_BUILD_SIGN_KEY_PASSWORD"  # an encrypted PEM key's password (cosign's COSIGN_PASSWORD too)


class EnvelopeError(Exception):
    """An envelope that does not verify; `reason` is a short name (bad-signature, malformed)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def statement(predicate_type: str, predicate: Any, name: str, digest: str) -> dict[str, Any]:
    """An in-toto v1 statement about the image `name` at manifest `digest` (pure)."""
    return {"_type": STATEMENT_TYPE, "subject": [{"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}],
            "predicateType": predicate_type, "predicate": predicate}


def sign(stmt: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> bytes:
    """The DSSE envelope (JSON bytes) of `stmt`, signed with `key`."""
    payload = json.dumps(stmt, sort_keys=True, separators=(",", ":")).encode()
    sig = key.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    envelope = {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
                "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}]}
    return json.dumps(envelope, separators=(",", ":")).encode()


def open_envelope(data: bytes, key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The statement inside a DSSE envelope once one of its signatures verifies with `key` (EnvelopeError else)."""
    try:
        env = json.loads(data)
        payload = base64.b64decode(env["payload"], validate=True)
        sigs = [base64.b64decode(s["sig"]) for s in env.get("signatures") or []]
        kind = str(env["payloadType"])
    except (ValueError, KeyError, TypeError) as exc:
        raise EnvelopeError("malformed", f"not a DSSE envelope ({exc})") from exc
    if kind != PAYLOAD_TYPE:
        raise EnvelopeError("malformed", f"payload type {kind!r} is not an in-toto statement")
    for sig in sigs:
        try:
            key.verify(sig, pae(kind, payload), ec.ECDSA(hashes.SHA256()))
            break
        except InvalidSignature:
            continue
    else:
        raise EnvelopeError("bad-signature", "no signature verifies with the given key")
    try:
        stmt = json.loads(payload)
    except ValueError as exc:
        raise EnvelopeError("malformed", f"the signed payload is not JSON ({exc})") from exc
    if not isinstance(stmt, dict) or not str(stmt.get("_type", "")).startswith("https://in-toto.io/Statement/"):
        raise EnvelopeError("malformed", "the signed payload is not an in-toto statement")
    return stmt


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """An ECDSA P-256 private key from a PEM file (PKCS#8 or SEC1; encrypted: password from the environment)."""
    data = _read(path, "--sign-key")
    password = os.environ.get(PASSWORD_ENV) or os.environ.get("COSIGN_PASSWORD")
    try:
        key = serialization.load_pem_private_key(data, password.encode() if password else None)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path}: not a readable PEM private key ({exc})",
                         hint="give an ECDSA P-256 key: openssl ecparam -name prime256v1 -genkey -noout -out "
                         f"sign.key (an encrypted one takes its password from ${PASSWORD_ENV})") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise UsageError(f"{path}: not an ECDSA P-256 private key", hint="openssl ecparam -name prime256v1 -genkey")
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """An ECDSA P-256 public key from a PEM file (`openssl ec -pubout`, cosign.pub)."""
    data = _read(path, "--key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path}: not a PEM public key ({exc})",
                         hint="give the signer's public key: openssl ec -in sign.key -pubout -out sign.pub") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise UsageError(f"{path}: not an ECDSA P-256 public key",
                         hint="give the P-256 key the images were signed with")
    return key


def _read(path: Path, option: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the key ({exc.strerror or exc})", hint=f"check {option} PATH") from exc
