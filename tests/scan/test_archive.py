"""Reading an image archive's manifest and config (docker-archive and OCI layouts), pure tar."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from ap_build.errors import UsageError
from ap_build.scan.archive import open_archive

LABEL = {"uk.gov.justice.analytical-platform.trivyignore": "/usr/local/share/x/trivyignore"}


def _layer(files: dict[str, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data or b"")
            t.addfile(info, io.BytesIO(data or b""))
    return buf.getvalue()


def _add(t: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))


def docker_archive(path: Path, layers: list[bytes]) -> Path:
    config = json.dumps({"config": {"Labels": LABEL}}).encode()
    with tarfile.open(path, "w") as t:
        names = []
        for i, layer in enumerate(layers):
            names.append(f"{i}/layer.tar")
            _add(t, names[-1], layer)
        _add(t, "cfg.json", config)
        _add(t, "manifest.json", json.dumps([{"Config": "cfg.json", "RepoTags": ["x:1"], "Layers": names}]).encode())
    return path


def oci_archive(path: Path, layers: list[bytes]) -> Path:
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> str:
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[d] = data
        return d

    cfg = put(json.dumps({"config": {"Labels": LABEL}}).encode())
    manifest = put(json.dumps({"config": {"digest": cfg}, "layers": [{"digest": put(x)} for x in layers]}).encode())
    index = {"manifests": [{"digest": manifest, "annotations": {"org.opencontainers.image.ref.name": "x:1"}}]}
    with tarfile.open(path, "w") as t:
        for d, data in blobs.items():
            _add(t, "blobs/sha256/" + d.split(":")[1], data)
        _add(t, "index.json", json.dumps(index).encode())
    return path


@pytest.mark.parametrize("make", [docker_archive, oci_archive])
def test_manifest_config_layers_and_tags(tmp_path: Path, make):
    lower = _layer({"usr/local/share/x/trivyignore": b"CVE-1\n", "etc/other": b"x"})
    upper = _layer({"./usr/local/share/x/trivyignore": b"CVE-2\n"})
    arch = open_archive(make(tmp_path / "a.tar", [lower, upper]))
    assert arch.config["config"]["Labels"] == LABEL and arch.repo_tags == ["x:1"]
    assert len(arch.layers) == 2
    with tarfile.open(arch.path) as t:  # the member names resolve, bottom layer first
        assert [t.extractfile(name).read() for name in arch.layers] == [lower, upper]


def test_not_an_archive(tmp_path: Path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar")
    with pytest.raises(UsageError, match=r"bad\.tar"):
        open_archive(bad)
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    with pytest.raises(UsageError, match=r"no manifest\.json"):
        open_archive(empty)
