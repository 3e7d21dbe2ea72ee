"""Reproducible builds on the real engine: two --no-cache builds differ as the engine makes them and are one
image once normalised; the runtime image built twice with --reproducible has one digest, and
`image verify --rebuild` proves a pushed image from its provenance alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ap_build.engine import Engine
from ap_build.images import reproduce

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine")]

AP_BUILD = str(Path(sys.executable).parent / "ap-build")
DOCKERFILE = """FROM {base}
RUN mkdir -p /opt/x && echo hello > /opt/x/a && ln /opt/x/a /opt/x/b && date +%s%N > /var/log/built.log \\
 && touch /tmp/scratch && chown 1000:1000 /opt/x/a
COPY f.txt /opt/f.txt
"""


def raw_build(engine: Engine, base: str) -> str:
    with tempfile.TemporaryDirectory(prefix="ap-build-repro-test-") as tmp:
        (Path(tmp) / "Dockerfile").write_text(DOCKERFILE.format(base=base))
        (Path(tmp) / "f.txt").write_text("data\n")
        return engine.build(Path(tmp), nocache=True)


def test_two_no_cache_builds_are_one_image_once_normalised(engine: Engine, debian_base: str) -> None:
    first, second = raw_build(engine, debian_base), raw_build(engine, debian_base)
    assert first != second  # the engine's own output is not reproducible (mtimes, the log, the created stamps)
    base_layers = engine.inspect(debian_base)["RootFS"]["Layers"]
    run = uuid.uuid4().hex[:8]
    a = reproduce.normalise(engine, first, base_layers, 1735689600, f"localhost/ap-build-test/repro:a-{run}")
    b = reproduce.normalise(engine, second, base_layers, 1735689600, f"localhost/ap-build-test/repro:b-{run}")
    try:
        assert a == b
        layers = engine.inspect(a)["RootFS"]["Layers"]
        assert layers[0] == base_layers[0] and len(layers) == len(engine.inspect(first)["RootFS"]["Layers"])
        _code, out = engine.run(a, ["-c", "cat /opt/x/b /opt/f.txt; stat -c %u /opt/x/a; ls /var/log/built.log"],
                               entrypoint=["sh"])
        assert out.startswith("hello\ndata\n1000\n") and "No such file" in out, out
    finally:
        for image in (first, second, a):
            engine.remove_image(image, force=True)


def test_runtime_image_twice_one_digest_and_verify_rebuild(engine: Engine, debian_base: str, registry: str,
                                                           tmp_path: Path) -> None:
    """`image build python --reproducible` (from the engine's cache, as a release would), pushed with --sign-key;
    `image verify --rebuild` builds it again with --no-cache from the provenance alone and finds the same config
    digest, layer for layer: two builds, one digest."""
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    (tmp_path / "k.pub").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1735689600"}
    run = uuid.uuid4().hex[:8]
    built = subprocess.run([AP_BUILD, "image", "build", "python", "--sources", "debian", "--base", debian_base,
                            "--version", "0.0.0-repro", "--tag", f"localhost/ap-build-test/repro-python:{run}",
                            "--reproducible", "--json"], capture_output=True, text=True, env=env)
    assert built.returncode == 0, built.stderr
    image_id = json.loads(built.stdout)["image_id"]
    try:
        check_rebuild(image_id, registry, run, tmp_path, env)
    finally:  # the normalised image under its three tags (built, pushed, rebuilt): ~360 MB of layers of its own
        engine.remove_image(image_id, force=True)


def check_rebuild(image_id: str, registry: str, run: str, tmp_path: Path, env: dict[str, str]) -> None:
    pushed = subprocess.run([AP_BUILD, "image", "push", image_id, f"{registry}/ap-build-repro/python-base:{run}",
                             "--sign-key", str(tmp_path / "k.pem")], capture_output=True, text=True, env=env)
    assert pushed.returncode == 0, pushed.stderr
    verified = subprocess.run([AP_BUILD, "image", "verify", pushed.stdout.strip(), "--key", str(tmp_path / "k.pub"),
                               "--rebuild", "--json"], capture_output=True, text=True, env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    verdict = json.loads(verified.stdout)
    assert verdict["rebuild"]["same"] is True and verdict["rebuild"]["image_id"] == image_id
    assert verdict["rebuild"]["expected"] == image_id and verdict["rebuild"]["layers_differ"] == []
