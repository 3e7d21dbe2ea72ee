"""End to end on the loopback registry: `image push --sign-key` attaches the signed provenance and SBOMs,
`image verify` passes, and a tampered tag, a wrong key, a missing attestation and a changed provenance
each fail with exit 1 and a named reason."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ap_build.engine import Engine
from ap_build.images import attest, dsse
from ap_build.images.index import OCI_INDEX, index_document
from ap_build.images.platforms import AMD64, ARM64
from ap_build.images.registry import Reference, Registry

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine")]

AP_BUILD = str(Path(sys.executable).parent / "ap-build")
RUN = uuid.uuid4().hex[:8]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AP_BUILD, *args], capture_output=True, text=True, timeout=900, env=dict(os.environ))


def keypair(folder: Path, name: str) -> tuple[Path, Path]:
    k = ec.generate_private_key(ec.SECP256R1())
    priv, pub = folder / f"{name}.key", folder / f"{name}.pub"
    priv.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                     serialization.NoEncryption()))
    pub.write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    (priv, pub), (_, other) = keypair(folder, "sign"), keypair(folder, "other")
    return {"key": priv, "pub": pub, "other": other}


@pytest.fixture(scope="module")
def attested(python_base_ref: str, registry: str, keys: dict[str, Path]) -> str:
    """The real Python base (its build recorded provenance), pushed with --sign-key: `name:tag@sha256:...`."""
    target = f"{registry}/ap-build-attest/python-base:{RUN}"
    proc = cli("image", "push", python_base_ref, target, "--sign-key", str(keys["key"]))
    assert proc.returncode == 0, proc.stderr
    assert "attested: provenance (SLSA v1), SBOM (SPDX), SBOM (CycloneDX)" in proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def verify(image: str, pub: Path) -> tuple[int, dict]:
    proc = cli("image", "verify", image, "--key", str(pub), "--json")
    assert "Traceback" not in proc.stderr
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else {"stderr": proc.stderr})


def test_build_records_provenance_about_the_image(python_base_ref: str, engine: Engine) -> None:
    from ap_build.images import provenance
    from ap_build.resources import cache_dir

    image_id = engine.inspect(python_base_ref)["Id"]
    stmt = provenance.load(provenance.cache_path(cache_dir(), image_id))
    assert stmt["subject"][0]["digest"]["sha256"] == image_id.removeprefix("sha256:")
    names = [d["name"] for d in stmt["predicate"]["buildDefinition"]["resolvedDependencies"]]
    assert {"recipe/Dockerfile", "base", "dpkg-installed", "wheel/uv"} <= set(names)
    assert "deb/python3" in names


def test_push_attaches_signed_provenance_and_both_sboms(attested: str, keys: dict[str, Path]) -> None:
    ref = Reference.parse(attested)
    reg = Registry(ref.host)
    got = reg.manifest(ref.repo, attest.att_tag(ref.digest or ""))
    assert got is not None, "no sha256-<hex>.att tag"
    layers = json.loads(got[0])["layers"]
    types = [layer["annotations"]["predicateType"] for layer in layers]
    assert sorted(types) == sorted([attest.SPDX, attest.CYCLONEDX, "https://slsa.dev/provenance/v1"])
    pub = dsse.load_public_key(keys["pub"])
    for layer in layers:
        assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
        assert layer["annotations"]["dev.cosignproject.cosign/signature"] == ""
        stmt = dsse.open_envelope(reg.blob(ref.repo, layer["digest"]), pub)
        assert stmt["subject"][0]["digest"]["sha256"] == (ref.digest or "").removeprefix("sha256:")
        if stmt["predicateType"] == attest.SPDX:
            assert stmt["predicate"]["spdxVersion"].startswith("SPDX-") and stmt["predicate"]["packages"]
        if stmt["predicateType"] == attest.CYCLONEDX:
            assert stmt["predicate"]["bomFormat"] == "CycloneDX" and stmt["predicate"]["components"]


COSIGN = Path(sys.executable).parent / "cosign"  # scripts/cosign.sh (setup.sh --test-deps): Debian's package


@pytest.mark.parametrize("kind", ["slsaprovenance1", "spdxjson", "cyclonedx"])
def test_cosign_verify_attestation_accepts_what_push_attached(attested: str, keys: dict[str, Path], kind: str) -> None:
    """The real cosign (2.5.0, Debian's build) reads the attestations `image push --sign-key` attached: the tag
    layout, the DSSE envelopes and their signatures; another key is refused."""
    if not COSIGN.is_file():
        pytest.skip("cosign is not installed: bash scripts/cosign.sh (scripts/setup.sh --test-deps runs it)")
    image = attested.rsplit("@", 1)[0].rsplit(":", 1)[0] + "@" + attested.rsplit("@", 1)[1]
    base = [str(COSIGN), "verify-attestation", "--insecure-ignore-tlog=true", "--allow-http-registry",
            "--type", kind, image]
    ok = subprocess.run([*base, "--key", str(keys["pub"])], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "The signatures were verified against the specified public key" in ok.stderr
    envelope = json.loads(ok.stdout.splitlines()[0])
    stmt = json.loads(base64.b64decode(envelope["payload"]))
    assert stmt["subject"][0]["digest"]["sha256"] == attested.rsplit("@sha256:", 1)[1]
    wrong = subprocess.run([*base, "--key", str(keys["other"])], capture_output=True, text=True, timeout=120)
    assert wrong.returncode != 0 and "no matching attestations" in wrong.stderr, wrong.stderr


def test_verify_passes_and_prints_the_provenance(attested: str, keys: dict[str, Path]) -> None:
    code, verdict = verify(attested.split("@")[0], keys["pub"])
    assert code == 0, verdict
    assert verdict["verified"] is True and verdict["digest"] == attested.split("@")[1]
    assert verdict["provenance"]["runtime"] == "python" and verdict["provenance"]["packages"] > 50
    human = cli("image", "verify", attested, "--key", str(keys["pub"]))
    assert human.returncode == 0 and "verified" in human.stdout and "recipe: sha256:" in human.stdout


def test_wrong_key_fails(attested: str, keys: dict[str, Path]) -> None:
    code, verdict = verify(attested, keys["other"])
    assert code == 1 and verdict["reason"] == "bad-signature", verdict


def test_missing_attestation_fails(debian_base: str, registry: str, keys: dict[str, Path]) -> None:
    pushed = cli("image", "push", debian_base, f"{registry}/ap-build-attest/unsigned:{RUN}")
    assert pushed.returncode == 0, pushed.stderr
    code, verdict = verify(pushed.stdout.strip(), keys["pub"])
    assert code == 1 and verdict["reason"] == "missing-attestation", verdict


def copy_attestations(reg: Registry, src_repo: str, dst_repo: str, digest: str) -> None:
    """The signed envelopes of `digest` in `src_repo`, attached unchanged in `dst_repo`."""
    original = reg.manifest(src_repo, attest.att_tag(digest))
    assert original is not None
    envelopes = [(layer["annotations"]["predicateType"], reg.blob(src_repo, layer["digest"]))
                 for layer in json.loads(original[0])["layers"]]
    attest.attach(reg, dst_repo, digest, envelopes)


def test_tampered_tag_fails(attested: str, debian_base: str, registry: str, keys: dict[str, Path]) -> None:
    """The tag is moved to another image: its digest has no attestations; copying the attestations over to
    the new digest does not help either (their subject is the original digest)."""
    tag = f"{registry}/ap-build-attest/tamper-{RUN}:1"  # a repository of this run: nothing left from earlier runs
    assert cli("image", "push", attested, tag).returncode == 0
    ref, copied = Reference.parse(attested), Reference.parse(tag)
    reg = Registry(ref.host)
    copy_attestations(reg, ref.repo, copied.repo, ref.digest or "")
    assert verify(tag, keys["pub"])[0] == 0
    moved = cli("image", "push", debian_base, tag)
    assert moved.returncode == 0, moved.stderr
    code, verdict = verify(tag, keys["pub"])
    assert code == 1 and verdict["reason"] == "missing-attestation", verdict
    new = moved.stdout.strip().split("@")[1]
    original = reg.manifest(copied.repo, attest.att_tag(ref.digest or ""))
    assert original is not None
    reg.put_manifest(copied.repo, attest.att_tag(new), original[0])
    code, verdict = verify(tag, keys["pub"])
    assert code == 1 and verdict["reason"] == "subject-mismatch", verdict


def test_changed_provenance_fails(attested: str, registry: str, keys: dict[str, Path]) -> None:
    """A copy of the image whose provenance was edited after signing (the builder changed)."""
    copy = cli("image", "push", attested, f"{registry}/ap-build-attest/edited:{RUN}")
    assert copy.returncode == 0, copy.stderr
    ref, copied = Reference.parse(attested), Reference.parse(copy.stdout.strip())
    reg = Registry(ref.host)
    original = reg.manifest(ref.repo, attest.att_tag(ref.digest or ""))
    assert original is not None
    envelopes = []
    for layer in json.loads(original[0])["layers"]:
        blob = reg.blob(ref.repo, layer["digest"])
        ptype = layer["annotations"]["predicateType"]
        if ptype == "https://slsa.dev/provenance/v1":
            env = json.loads(blob)
            stmt = json.loads(base64.b64decode(env["payload"]))
            stmt["predicate"]["runDetails"]["builder"]["id"] = "https://attacker.example/"
            env["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
            blob = json.dumps(env).encode()
        envelopes.append((ptype, blob))
    attest.attach(reg, copied.repo, copied.digest or "", envelopes)
    code, verdict = verify(copy.stdout.strip(), keys["pub"])
    assert code == 1 and verdict["reason"] == "bad-signature", verdict
    assert "provenance" in verdict["problems"][0]["message"]


def test_an_index_is_verified_platform_by_platform(attested: str, keys: dict[str, Path]) -> None:
    """A multi-platform tag (an OCI index, as `image push` of a multi-platform build writes) is verified entry by
    entry: every platform's digest must carry its own signed attestations."""
    ref = Reference.parse(attested)
    reg = Registry(ref.host)
    signed = reg.manifest(ref.repo, ref.digest or "")
    assert signed is not None
    doc = json.loads(signed[0])
    other = json.dumps({**doc, "annotations": {"run": RUN}}).encode()  # the same image under another digest
    unsigned = reg.put_manifest(ref.repo, f"unsigned-{RUN}", other, signed[1])
    tag = f"{ref.host}/{ref.repo}:index-{RUN}"
    reg.put_manifest(ref.repo, f"index-{RUN}", index_document({AMD64: (signed[2], len(signed[0]))}), OCI_INDEX)
    code, verdict = verify(tag, keys["pub"])
    assert code == 0, verdict
    assert [(p["platform"], p["digest"], p["verified"]) for p in verdict["platforms"]] == [
        ("linux/amd64", signed[2], True)]
    human = cli("image", "verify", tag, "--key", str(keys["pub"]))
    assert "(an index of 1 platform, each verified)" in human.stdout and f"linux/amd64: {signed[2]}" in human.stdout
    index = index_document({AMD64: (signed[2], len(signed[0])), ARM64: (unsigned, len(other))})
    reg.put_manifest(ref.repo, f"index-{RUN}", index, OCI_INDEX)
    code, verdict = verify(tag, keys["pub"])
    assert code == 1 and verdict["reason"] == "missing-attestation", verdict
    assert verdict["problems"][0]["message"].startswith("linux/arm64/v8: no attestations for " + unsigned)
    assert [p["verified"] for p in verdict["platforms"]] == [True, False]
    proc = cli("image", "verify", tag, "--key", str(keys["pub"]), "--rebuild")
    assert proc.returncode == 2 and "an index of 2 platforms" in proc.stderr, proc.stderr


def test_verify_could_not_run_is_exit_2(keys: dict[str, Path], registry: str) -> None:
    proc = cli("image", "verify", f"{registry}/ap-build-attest/no-such-image:1", "--key", str(keys["pub"]))
    assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr
    bad_key = cli("image", "verify", f"{registry}/x:1", "--key", "/nonexistent.pub")
    assert bad_key.returncode == 2 and "cannot read the key" in bad_key.stderr


def test_rebuild_of_an_image_built_without_reproducible_fails_at_once(attested: str, keys: dict[str, Path]) -> None:
    proc = cli("image", "verify", attested, "--key", str(keys["pub"]), "--rebuild", "--json")
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["reason"] == "not-reproducible"
