"""Reproducible images: rewrite the engine's build output deterministically, as apko does, and load it back.

The engine's Dockerfile build is not deterministic (layer mtimes of files the build creates, file order in
a layer, config timestamps, logs and caches). `normalise(engine, image_id, epoch)` saves the built image,
rewrites every layer the build made (entries sorted by name, mtimes clamped to SOURCE_DATE_EPOCH, the source
mtimes recorded in .pyc headers clamped alike, owner names dropped with numeric IDs kept, PAX headers other
than xattrs dropped, hard links re-pointed at the
first name in order, volatile files removed), writes the config with every timestamp set to the epoch and
no build-host fields, and loads the result (a docker-archive) into the engine. The base's own layers are
passed through unchanged. The image ID (the config's digest) is then a function of the inputs alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from ap_build.errors import EngineError
from ap_build.images.build import BuildReport

# Files a build leaves behind that differ from run to run and that nothing in the image needs (fontconfig's caches
# record directory mtimes, which the rewrite clamps: fontconfig would discard them anyway).
VOLATILE = re.compile(
    r"^(var/log/.+|var/cache/ldconfig/aux-cache|var/cache/debconf/[^/]+-old|var/lib/dpkg/[^/]+-old"
    r"|var/cache/apt/.+|var/lib/apt/lists/.+|tmp/.+|root/\.cache/.+|run/.+|etc/machine-id"
    r"|var/lib/dbus/machine-id|var/lib/systemd/random-seed|var/cache/fontconfig/.+)$"
)
NORMALISER = 3  # bump when the rewrite changes: it keys the memo of normalised images
# config keys that record the build host or the build run, not the image
# (`parent` and history comments name the build's intermediate images, which differ from run to run)
_HOST_KEYS = ("container", "container_config", "docker_version", "Hostname", "Domainname", "parent")


class _HashingWriter(io.RawIOBase):
    def __init__(self, fh: IO[bytes]) -> None:
        self.fh, self.hash, self.size = fh, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data: Any) -> int:
        b = bytes(data)
        self.hash.update(b)
        self.size += len(b)
        self.fh.write(b)
        return len(b)


def _name(member: tarfile.TarInfo) -> str:
    return member.name.lstrip("./") if member.name.startswith("./") else member.name.lstrip("/")


def normalise_layer(src: Path | IO[bytes], dst: Path, epoch: int) -> str:
    """Rewrite the layer tar `src` (a file, or a seekable stream) deterministically into `dst`; return its diff ID
    (`sha256:` of the tar)."""
    source = {"name": src} if isinstance(src, Path) else {"fileobj": src, "mode": "r:"}
    with tarfile.open(**source) as tin, dst.open("wb") as raw:  # type: ignore[call-overload]
        members: dict[str, tarfile.TarInfo] = {}
        for m in tin.getmembers():
            name = _name(m)
            if name and not (VOLATILE.match(name) and not m.isdir()):
                members[name] = m  # a later entry of the same name wins, as on extraction
        # hard links: the first name of each group (in sorted order) carries the data, the others link to it
        groups: dict[str, list[str]] = {}
        for name, m in members.items():
            if m.islnk():
                target = m.linkname.lstrip("./") if m.linkname.startswith("./") else m.linkname.lstrip("/")
                groups.setdefault(target, [target]).append(name)
        leader: dict[str, str] = {}
        data_of: dict[str, tarfile.TarInfo] = {}
        for target, names in groups.items():
            present = sorted(n for n in set(names) if n in members)
            source = members.get(target)
            if not present or source is None or not source.isreg():
                continue
            for n in present:
                leader[n] = present[0]
            data_of[present[0]] = source
        writer = _HashingWriter(raw)
        with tarfile.open(fileobj=writer, mode="w", format=tarfile.PAX_FORMAT) as tout:  # type: ignore[call-overload]
            for name in sorted(members):
                orig = members[name]
                m = tarfile.TarInfo(name)
                content = orig
                if name in leader and leader[name] != name:
                    m.type, m.linkname = tarfile.LNKTYPE, leader[name]
                    content = data_of[leader[name]]
                elif name in leader:
                    content = data_of[name]
                    m.type = tarfile.REGTYPE
                else:
                    m.type, m.linkname = orig.type, orig.linkname
                m.mode, m.uid, m.gid = content.mode, content.uid, content.gid
                m.uname = m.gname = ""
                m.mtime = min(int(content.mtime), epoch)
                if m.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                    m.devmajor, m.devminor = orig.devmajor, orig.devminor
                m.pax_headers = {k: v for k, v in sorted(content.pax_headers.items()) if k.startswith("SCHILY.xattr.")}
                if m.type == tarfile.REGTYPE or (m.type == tarfile.AREGTYPE):
                    m.size = content.size
                    stream = tin.extractfile(content)
                    if name.endswith(".pyc") and "__pycache__/" in name and stream is not None:
                        stream = io.BytesIO(pyc_clamped(stream.read(), epoch))
                    tout.addfile(m, stream)
                else:
                    m.size = 0
                    tout.addfile(m)
        return "sha256:" + writer.hash.hexdigest()


def pyc_clamped(data: bytes, epoch: int) -> bytes:
    """A timestamp-based .pyc (PEP 552 flags 0) whose recorded source mtime is clamped as its source's is, so the
    cache stays valid and the bytes stop depending on when the build wrote the source (pure)."""
    if len(data) < 16 or data[4:8] != b"\0\0\0\0":
        return data
    mtime = int.from_bytes(data[8:12], "little")
    return data[:8] + min(mtime, epoch).to_bytes(4, "little") + data[12:] if mtime > epoch else data


def iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalise_config(config: dict[str, Any], diff_ids: list[str], epoch: int) -> bytes:
    """The image config with every timestamp at the epoch, no build-host fields, the new diff IDs (pure)."""
    out = {k: v for k, v in config.items() if k not in _HOST_KEYS}
    out["created"] = iso(epoch)
    out["config"] = {k: v for k, v in (config.get("config") or {}).items() if k not in _HOST_KEYS}
    out["history"] = [{**{k: v for k, v in h.items() if k not in ("created", "comment")}, "created": iso(epoch)}
                      for h in config.get("history") or []]
    out["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    return json.dumps(out, sort_keys=True, separators=(",", ":")).encode()


def _add(tar: tarfile.TarFile, name: str, data: bytes | Path, epoch: int) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.mode = epoch, 0o644
    if isinstance(data, Path):
        info.size = data.stat().st_size
        with data.open("rb") as fh:
            tar.addfile(info, fh)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def normalise(engine: Any, image_id: str, base_layers: list[str], epoch: int, tag: str,
              workdir: Path | None = None) -> str:
    """Save `image_id`, rewrite the layers it adds to `base_layers`, load the result as `tag`; its image ID."""
    with tempfile.TemporaryDirectory(prefix="ap-build-repro-", dir=workdir) as tmp:
        folder = Path(tmp)
        archive = engine.save(image_id, folder / "raw.tar")
        layers: list[tuple[str, Path | tarfile.TarInfo]] = []
        with tarfile.open(archive) as saved:
            manifest = json.load(saved.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
            config = json.load(saved.extractfile(manifest["Config"]))  # type: ignore[arg-type]
            diff_ids = list(config["rootfs"]["diff_ids"])
            for i, path in enumerate(manifest["Layers"]):
                member = saved.getmember(path)
                if i < len(base_layers) and diff_ids[i] == base_layers[i]:
                    layers.append((diff_ids[i], member))  # the base's own layer, unchanged
                    continue
                inner = saved.extractfile(member)  # read in place: the saved archive is uncompressed and seekable
                if inner is None:
                    raise EngineError(f"the saved image {image_id[:19]} has no layer {path}")
                dst = folder / f"out-{i}.tar"
                layers.append((normalise_layer(inner, dst, epoch), dst))
            cfg = normalise_config(config, [d for d, _ in layers], epoch)
            cfg_hex = hashlib.sha256(cfg).hexdigest()
            out = folder / "normalised.tar"
            with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
                _add(tar, f"{cfg_hex}.json", cfg, epoch)
                for diff_id, source in layers:
                    name = f"{diff_id.removeprefix('sha256:')}/layer.tar"
                    if isinstance(source, Path):
                        _add(tar, name, source, epoch)
                        source.unlink()
                    else:
                        info = tarfile.TarInfo(name)
                        info.size, info.mtime, info.mode = source.size, epoch, 0o644
                        tar.addfile(info, saved.extractfile(source))
                entry = [{"Config": f"{cfg_hex}.json", "RepoTags": [],
                          "Layers": [f"{d.removeprefix('sha256:')}/layer.tar" for d, _ in layers]}]
                _add(tar, "manifest.json", json.dumps(entry).encode(), epoch)
        archive.unlink()
        engine.load(out)
    new_id = f"sha256:{cfg_hex}"
    if not engine.image_exists(new_id):
        raise EngineError(f"the engine did not load the normalised image {new_id[:19]}")
    engine.tag(new_id, tag)
    return new_id


def epoch_of(created: str) -> int:
    """SOURCE_DATE_EPOCH of a build: its `created` stamp (SOURCE_DATE_EPOCH, else the commit time)."""
    return int(dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp())


def reproducible(engine: Any, result: BuildReport, cache: Path) -> BuildReport:
    """The build `result` normalised (cached by the engine's own image ID, so a no-change rebuild stays fast)."""
    raw = result.image_id.removeprefix("sha256:")
    memo = cache / "reproducible" / f"{NORMALISER}-{raw}"
    new = memo.read_text().strip() if memo.is_file() else ""
    if new and engine.image_exists(new):
        engine.tag(new, result.tag)
    else:
        base_layers = list(engine.inspect(result.base)["RootFS"]["Layers"] or [])
        new = normalise(engine, result.image_id, base_layers, epoch_of(result.created), result.tag)
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(new + "\n")
    return replace(result, image_id=new, size_bytes=int(engine.inspect(new).get("Size") or 0))
