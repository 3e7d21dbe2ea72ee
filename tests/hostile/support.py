"""Helpers for the hostile-input suite: hand-made image archives, a Trivy DB, and tree snapshots."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from ap_build.platform import BASE_TRIVYIGNORE_LABEL

OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'


def _add(t: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))


def image_archive(path: Path, *, label: str | None = None, files: dict[str, bytes] | None = None,
                  config: object = "cfg.json") -> Path:
    """A `docker save` archive of one layer (`files`, default an os-release), optionally carrying the base
    image's ignore list as its label. `config` overrides the manifest's Config entry (hostile archives)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        for name, data in (files or {"etc/os-release": OS_RELEASE}).items():
            _add(t, name, data)
    labels = {BASE_TRIVYIGNORE_LABEL: label} if label is not None else {}
    cfg = {"architecture": "amd64", "os": "linux", "config": {"Labels": labels},
           "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer.getvalue()).hexdigest()]}}
    with tarfile.open(path, "w") as t:
        _add(t, "layer.tar", layer.getvalue())
        _add(t, "cfg.json", json.dumps(cfg).encode())
        _add(t, "manifest.json", json.dumps([{"Config": config, "RepoTags": ["hostile:1"],
                                               "Layers": ["layer.tar"]}]).encode())
    return path


def snapshot(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every entry under `root` (links not followed): kind, mode and content hash / link target."""
    out: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = ("link", 0, os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", st.st_mode & 0o7777, "")
            else:
                out[rel] = ("file", st.st_mode & 0o7777, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def assert_clean(r: object, codes: tuple[int, ...] = (0, 1, 2), fragment: str = "") -> None:
    """The contract for any input: a documented exit code, no traceback, one `error:` line on failure."""
    code, out, err = r.exit_code, r.stdout, r.stderr  # type: ignore[attr-defined]
    assert code in codes, (code, out, err)
    assert "Traceback" not in out + err and "internal error" not in err, err
    if code == 2:
        assert err.startswith("error: "), err
    assert fragment in out + err, (fragment, out, err)
