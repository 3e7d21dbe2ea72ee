"""Signed stand-ins for upstream sources these machines cannot reach, served from loopback.

The recipes' verification code runs unchanged against them: a throw-away GPG key plays the
vendor's key, and the test passes its fingerprint where the upstream one is pinned.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import hashlib
import http.server
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Signer:
    """A throw-away GPG key in its own home."""

    home: Path
    fingerprint: str = ""

    @classmethod
    def create(cls, home: Path, uid: str) -> Signer:
        home.mkdir(mode=0o700, parents=True)
        signer = cls(home)
        signer.gpg("--quick-gen-key", uid, "rsa2048", "sign", "never")
        listing = signer.gpg("--with-colons", "--list-keys").decode()
        signer.fingerprint = next(ln.split(":")[9] for ln in listing.splitlines() if ln.startswith("fpr"))
        return signer

    def gpg(self, *args: str) -> bytes:
        cmd = ["gpg", "--batch", "--homedir", str(self.home), "--passphrase", "", "--pinentry-mode", "loopback"]
        return subprocess.run([*cmd, *args], check=True, capture_output=True).stdout

    def public_key(self, dest: Path) -> Path:
        dest.write_bytes(self.gpg("--armor", "--export"))
        return dest

    def detach_sign(self, path: Path) -> Path:
        sig = path.with_name(path.name + ".sig")
        self.gpg("--yes", "--detach-sign", "-o", str(sig), str(path))
        return sig

    def clearsign(self, path: Path, dest: Path) -> Path:
        self.gpg("--yes", "--clearsign", "-o", str(dest), str(path))
        return dest


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve `directory` over HTTP on 127.0.0.1 (a random port); yields the base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def make_deb(workdir: Path, name: str, version: str, files: dict[str, bytes], out: Path) -> Path:
    """A real .deb (dpkg-deb) holding `files` (absolute path -> content)."""
    root = workdir / f"{name}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: amd64\nMaintainer: ap-build tests <t@example.com>\n"
        f"Description: stand-in for {name}\n")
    for path, data in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    deb = out / f"{name}_{version}_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)], check=True, capture_output=True)
    return deb


def flat_apt_repo(repo: Path, signer: Signer, directory: str = ".") -> None:
    """Write Packages and a signed InRelease for the .deb files in `repo`, a flat repository used as
    `deb URL <directory>/` (package file names are relative to URL, so they carry `directory`)."""
    stanzas = []
    for deb in sorted(repo.glob("*.deb")):
        control = subprocess.run(["dpkg-deb", "--field", str(deb)], check=True, capture_output=True,
                                 text=True).stdout.strip()
        data = deb.read_bytes()
        stanzas.append(f"{control}\nFilename: {directory}/{deb.name}\nSize: {len(data)}\n"
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
    packages = "\n".join(stanzas).encode()
    (repo / "Packages").write_bytes(packages)
    release = repo / "Release"
    release.write_text(f"Date: {email.utils.formatdate(usegmt=True)}\nArchitectures: amd64\nSHA256:\n"
                       f" {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n")
    signer.clearsign(release, repo / "InRelease")
