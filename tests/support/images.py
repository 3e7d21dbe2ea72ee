"""Small test images built FROM a given base, cached in the engine by a hash of their content."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from ap_build.engine import Engine
from ap_build.images.build import BuildReport

TEST_VERSION = "0.0.0-test"


def build_cached(
    engine: Engine,
    name: str,
    dockerfile: str,
    files: dict[str, str | bytes] | None = None,
    labels: dict[str, str] | None = None,
) -> str:
    """Build `dockerfile` (+ `files`, + build-time `labels`) as `localhost/ap-build-test/<name>:<hash>`;
    reuse it if present.

    The tag is a hash of the Dockerfile, files and labels, so a changed recipe builds a new image and an
    unchanged one is reused across test sessions. Returns the image reference.
    """
    files, labels = files or {}, labels or {}
    h = hashlib.sha256(dockerfile.encode())
    for path in sorted(files):
        data = files[path]
        h.update(path.encode() + b"\0" + (data.encode() if isinstance(data, str) else data) + b"\0")
    for key in sorted(labels):
        h.update(f"label {key}\0{labels[key]}\0".encode())
    ref = f"localhost/ap-build-test/{name}:{h.hexdigest()[:16]}"
    if engine.image_exists(ref):
        return ref
    with tempfile.TemporaryDirectory(prefix="ap-build-test-") as tmp:
        ctx = Path(tmp)
        (ctx / "Dockerfile").write_text(dockerfile)
        for path, data in files.items():
            target = ctx / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                target.write_bytes(data)
            else:
                target.write_text(data)
        image_id = engine.build(ctx, labels=labels)
    engine.tag(image_id, ref)
    return ref


def user_image_dockerfile(base: str, extra: str = "") -> str:
    """A stand-in user image meeting the platform contract (user 1000, workdir /opt/analyticalplatform)."""
    return (
        f"FROM {base}\n"
        "RUN useradd --uid 1000 --create-home analyticalplatform && mkdir -p /opt/analyticalplatform "
        "&& chown 1000:1000 /opt/analyticalplatform\n"
        f"{extra}"
        "WORKDIR /opt/analyticalplatform\n"
        "USER 1000\n"
    )


def build_runtime(engine: Engine, runtime: str, base: str, *, version: str = TEST_VERSION) -> BuildReport:
    """Build the real runtime image as `ap-build image build --no-reproducible` does, with `--sources auto` (on
    these machines: Debian's archive and PyPI); cached by the engine. Not normalised: the attestation tests need
    an image that is not reproducible, and test_reproduce_e2e builds the default way."""
    from ap_build.images.pipeline import BuildRequest, build

    return build(BuildRequest(runtime=runtime, version=version, base=base, reproducible=False), engine)


def source_versions(engine: Engine, image: str) -> dict[str, str]:
    """Debian source package -> source version installed in `image` (what Trivy's OS advisories key on)."""
    rc, outp = engine.run(image, ["dpkg-query", "-W", "-f", "${source:Package} ${source:Version}\\n"])
    assert rc == 0, outp
    return dict(line.split(" ", 1) for line in outp.strip().splitlines())
