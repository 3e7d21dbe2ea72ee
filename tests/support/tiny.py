"""Tiny images of each platform (Debian's static busybox, amd64 and arm64) for the multi-platform tests.

Built FROM scratch through the engine's build API with `platform=`, so each config declares its architecture and
nothing runs at build time (no emulation). The binary comes from Debian's archive, checked against the suite's
Packages index; the images are cached in the engine by a hash of their recipe, so the archive is read only when
the recipe changes or the engine lost them.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import subprocess
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from ap_build.engine import Engine
from ap_build.images.platforms import Platform

MIRROR, SUITE, PACKAGE = "http://deb.debian.org/debian", "bookworm", "busybox-static"
APPLETS = ("sh", "bash", "sleep", "uname", "id", "whoami", "cat", "ls", "stat", "env", "grep", "echo", "true",
           "false", "test", "printf", "head", "tr", "cut", "sed", "pwd", "touch", "find", "mkdir")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nanalyticalplatform:x:1000:1000::/home/analyticalplatform:/bin/bash\n"
GROUP = "root:x:0:\nanalyticalplatform:x:1000:\n"
DOCKERFILE = """\
FROM scratch
COPY rootfs/ /
COPY --chown=1000:1000 user/ /
ENV PATH=/bin AIRFLOW_RUNTIME=python
WORKDIR /opt/analyticalplatform
USER 1000
CMD ["uname", "-m"]
"""


def busybox(arch: str) -> bytes:
    """Debian's static busybox for `arch` (Debian's name), the .deb checked against the suite's Packages index."""
    with urllib.request.urlopen(f"{MIRROR}/dists/{SUITE}/main/binary-{arch}/Packages.xz", timeout=120) as resp:
        index = lzma.decompress(resp.read()).decode()
    stanza = next(s for s in index.split("\n\n") if s.startswith(f"Package: {PACKAGE}\n"))
    fields = dict(ln.split(": ", 1) for ln in stanza.splitlines() if ": " in ln and not ln.startswith(" "))
    with urllib.request.urlopen(f"{MIRROR}/{fields['Filename']}", timeout=300) as resp:
        deb = resp.read()
    assert hashlib.sha256(deb).hexdigest() == fields["SHA256"], f"{fields['Filename']} is not the indexed one"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "p.deb").write_bytes(deb)
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(Path(tmp) / "p.deb")], capture_output=True,
                              check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile("./bin/busybox")
        assert member is not None
        return member.read()


def _context(ctx: Path, binary: bytes) -> None:
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    root = ctx / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "busybox").write_bytes(binary)
    (root / "bin" / "busybox").chmod(0o755)
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    for d in ("tmp", "root"):
        (root / d).mkdir(mode=0o1777 if d == "tmp" else 0o700)
    for d in ("home/analyticalplatform", "opt/analyticalplatform"):
        (ctx / "user" / d).mkdir(parents=True, mode=0o755)
        (ctx / "user" / d).chmod(0o755)


def tiny_image(engine: Engine, target: Platform, binary_of: Platform | None = None) -> str:
    """The tiny image declaring `target`, carrying `binary_of`'s busybox (default: its own; another one makes
    an image that lies about its platform). Cached as `localhost/ap-build-test/tiny-<arch>:<recipe hash>`."""
    source = binary_of or target
    key = hashlib.sha256(f"{DOCKERFILE}{APPLETS}{PASSWD}{GROUP}{MIRROR}{SUITE}{PACKAGE}{source.deb_arch}".encode())
    ref = f"localhost/ap-build-test/tiny-{target.arch}:{source.arch}-{key.hexdigest()[:16]}"
    if engine.image_exists(ref):
        return ref
    with tempfile.TemporaryDirectory(prefix="ap-build-tiny-") as tmp:
        _context(Path(tmp), busybox(source.deb_arch))
        # no layer cache: Podman reuses a cached step of another platform (same context: the lying image)
        image_id = engine.build(Path(tmp), platform=target.name, nocache=source != target)
    engine.tag(image_id, ref)
    return ref
