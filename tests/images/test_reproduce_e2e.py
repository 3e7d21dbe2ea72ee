"""Reproducible builds on the real engine: two --no-cache builds differ as the engine makes them and are one
image once normalised; the runtime image built with --reproducible, pushed and signed, is built again by
`image verify --rebuild` from its provenance alone on ANOTHER engine storage root (a second Podman service with
its own --root, scripts/engine-root2.sh) with --no-cache, and has one digest, layer for layer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from support.tiny import tiny_image

from ap_build.engine import Engine
from ap_build.images import reproduce
from ap_build.images.emulation import support
from ap_build.images.platforms import ARM64

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine")]

AP_BUILD = str(Path(sys.executable).parent / "ap-build")
DOCKERFILE = """FROM {base}
RUN mkdir -p /opt/x && echo hello > /opt/x/a && ln /opt/x/a /opt/x/b && date +%s%N > /var/log/built.log \\
 && touch /tmp/scratch && chown 1000:1000 /opt/x/a
COPY f.txt /opt/f.txt
"""


# a recipe that leaves nothing volatile behind (no log, no scratch file): what the engine's `timestamp` needs
STAMPABLE = """FROM {base}
RUN mkdir -p /opt/x && echo hello > /opt/x/a && ln /opt/x/a /opt/x/b && chown 1000:1000 /opt/x/a
COPY f.txt /opt/f.txt
"""


def raw_build(engine: Engine, base: str, recipe: str = DOCKERFILE, timestamp: int | None = None) -> str:
    with tempfile.TemporaryDirectory(prefix="ap-build-repro-test-") as tmp:
        (Path(tmp) / "Dockerfile").write_text(recipe.format(base=base))
        (Path(tmp) / "f.txt").write_text("data\n")
        return engine.build(Path(tmp), nocache=True, timestamp=timestamp)


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


def test_an_engine_that_stamps_its_layers_needs_only_the_config_rewritten(engine: Engine, debian_base: str) -> None:
    """Podman honours the build's `timestamp`: its layers are then a function of their content, two --no-cache
    builds differ only in the config (the build's container, host name, parent), and `restamp` makes them one
    image without reading a layer (every layer a placeholder)."""
    if engine.info().name != "Podman":
        pytest.skip(f"{engine.info().name} does not stamp a build's layers (the full rewrite serves it)")
    epoch = 1735689600
    first = raw_build(engine, debian_base, STAMPABLE, timestamp=epoch)
    second = raw_build(engine, debian_base, STAMPABLE, timestamp=epoch)
    plain = raw_build(engine, debian_base, STAMPABLE)
    run = uuid.uuid4().hex[:8]
    made: list[str] = []
    try:
        assert reproduce.stamped(engine, first, epoch) and reproduce.stamped(engine, second, epoch)
        assert not reproduce.stamped(engine, plain, epoch)
        assert first != second
        layers = engine.inspect(first)["RootFS"]["Layers"]
        assert engine.inspect(second)["RootFS"]["Layers"] == layers  # the layers already agree
        a = reproduce.restamp(engine, first, epoch, f"localhost/ap-build-test/restamp:a-{run}")
        b = reproduce.restamp(engine, second, epoch, f"localhost/ap-build-test/restamp:b-{run}")
        assert a is not None and b is not None
        made.append(a)
        assert a == b and engine.inspect(a)["RootFS"]["Layers"] == layers
        assert engine.inspect(a)["Created"].startswith("2025-01-01T00:00:00")
        _code, out = engine.run(a, ["-c", "cat /opt/x/b /opt/f.txt; stat -c '%u %Y' /opt/x/a"], entrypoint=["sh"])
        assert out.startswith(f"hello\ndata\n1000 {epoch}"), out
    finally:
        for image in (first, second, plain, *made):
            engine.remove_image(image, force=True)


def test_an_emulated_arm64_build_is_stamped_and_restamped_as_arm64(engine: Engine) -> None:
    """`image build --platform linux/arm64` takes the same way: the RUN runs under qemu, the engine stamps the
    layers, and the rewritten config keeps the image's architecture."""
    if engine.info().name != "Podman":
        pytest.skip(f"{engine.info().name} does not stamp a build's layers")
    if support(ARM64).how == "none":  # CI's setup enables it (scripts/setup.sh)
        pytest.skip(f"no emulation of arm64 here: {support(ARM64).detail}")
    base, epoch, run = tiny_image(engine, ARM64), 1735689600, uuid.uuid4().hex[:8]
    recipe = f"FROM {base}\nUSER 0\nRUN mkdir -p /opt/x && uname -m > /opt/x/built-on\nUSER 1000\n"
    built, made = [], []
    try:
        for _ in range(2):
            with tempfile.TemporaryDirectory(prefix="ap-build-repro-arm64-") as tmp:
                (Path(tmp) / "Dockerfile").write_text(recipe)
                built.append(engine.build(Path(tmp), nocache=True, platform="linux/arm64", timestamp=epoch))
        assert all(reproduce.stamped(engine, b, epoch) for b in built) and built[0] != built[1]
        for i, raw in enumerate(built):
            made.append(reproduce.restamp(engine, raw, epoch, f"localhost/ap-build-test/restamp-arm64:{i}-{run}"))
        assert made[0] is not None and made[0] == made[1]
        assert engine.inspect(made[0])["Architecture"] == "arm64"
        _code, out = engine.run(made[0], ["cat", "/opt/x/built-on"])
        assert out == "aarch64\n", out
    finally:
        for image in (*built, *(m for m in made if m)):
            engine.remove_image(image, force=True)


@pytest.fixture(scope="module")
def second_root(engine: Engine, debian_base: str) -> Iterator[str]:
    """DOCKER_HOST of a Podman API service of this test's own on an empty storage root (stopped and removed after),
    holding only the Debian base, copied from the first engine (an input of the build: a pinned base)."""
    if shutil.which("podman") is None:
        pytest.skip("a second storage root needs Podman (scripts/setup.sh)")
    folder = f"/var/tmp/ap-build-root2-test-{uuid.uuid4().hex[:8]}"
    script = str(ROOT / "scripts/engine-root2.sh")
    started = subprocess.run(["bash", script, "start", folder], capture_output=True, text=True, timeout=120)
    try:
        assert started.returncode == 0, started.stderr
        host = started.stdout.strip()
        other = Engine.connect(host)
        with tempfile.TemporaryDirectory(prefix="ap-build-repro-base-", dir="/var/tmp") as tmp:
            other.load(engine.save(debian_base, Path(tmp) / "base.tar"))
        assert other.image_exists(debian_base) and Path(folder, "storage").is_dir()
        yield host
    finally:
        subprocess.run(["bash", script, "stop", folder], capture_output=True, text=True, timeout=300)


def test_runtime_image_on_two_storage_roots_one_digest(engine: Engine, debian_base: str, registry: str,
                                                       second_root: str, tmp_path: Path) -> None:
    """`image build python` (reproducible by default where the engine stamps its layers), pushed with --sign-key;
    `image verify --rebuild` on the second storage root builds it again with --no-cache from the provenance alone
    and finds the same config digest, layer for layer: two builds, two storage roots, one digest."""
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    (tmp_path / "k.pub").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1735689600"}
    run = uuid.uuid4().hex[:8]
    built = subprocess.run([AP_BUILD, "image", "build", "python", "--sources", "debian", "--base", debian_base,
                            "--version", "0.0.0-repro", "--tag", f"localhost/ap-build-test/repro-python:{run}",
                            "--json"], capture_output=True, text=True, env=env)  # reproducible by default on Podman
    assert built.returncode == 0, built.stderr
    assert "reproducible: " in built.stderr and "normalised to" in built.stderr, built.stderr
    image_id = json.loads(built.stdout)["image_id"]
    try:
        pushed = subprocess.run([AP_BUILD, "image", "push", image_id, f"{registry}/ap-build-repro/python-base:{run}",
                                 "--sign-key", str(tmp_path / "k.pem")], capture_output=True, text=True, env=env)
        assert pushed.returncode == 0, pushed.stderr
        verified = subprocess.run([AP_BUILD, "image", "verify", pushed.stdout.strip(), "--key",
                                   str(tmp_path / "k.pub"), "--rebuild", "--json"], capture_output=True, text=True,
                                  env={**env, "DOCKER_HOST": second_root})
        assert verified.returncode == 0, verified.stdout + verified.stderr
        verdict = json.loads(verified.stdout)
        assert verdict["rebuild"]["same"] is True and verdict["rebuild"]["image_id"] == image_id
        assert verdict["rebuild"]["expected"] == image_id and verdict["rebuild"]["layers_differ"] == []
        there = Engine.connect(second_root)
        assert there.image_exists(image_id)  # the rebuild, on the second root
        assert there.inspect(image_id)["RootFS"]["Layers"] == engine.inspect(image_id)["RootFS"]["Layers"]
    finally:  # the normalised image under its two tags (built, pushed): ~360 MB of layers of its own
        engine.remove_image(image_id, force=True)
