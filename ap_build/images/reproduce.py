"""Reproducible images: make the engine's build output deterministic, as apko makes its own, and load it back.

A Dockerfile build is not deterministic by itself (the mtimes of files the build writes, file order in a layer,
config timestamps, the build's container and host names, logs and caches). Two ways out, chosen per build:

- `restamp` (an engine that honours the build's `timestamp`, as Podman does: `stamped`): the engine wrote every
  file of the build's layers with the epoch's mtime, in its own sorted order, and the recipe leaves nothing
  volatile behind (render: SOURCE_DATE_EPOCH in the image's stage, logs and caches removed in the layer that writes
  them), so the layers already are a function of their content; only the config is rewritten, and loaded with
  every layer an empty placeholder.
- `normalise` (any other engine): save the built image, rewrite every layer the build made (entries sorted by
  name, mtimes clamped to SOURCE_DATE_EPOCH, the source mtimes recorded in .pyc headers clamped alike, owner
  names dropped with numeric IDs kept, PAX headers other than xattrs dropped, hard links re-pointed at the first
  name in order, volatile files removed), and load the result; the base's own layers pass through unchanged.

Either way the config gets every timestamp at the epoch and no build-host fields, so the image ID (the config's
digest) is a function of the inputs alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import tarfile
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from ap_build.errors import ApBuildError, EngineError
from ap_build.images import provenance
from ap_build.images.build import BuildReport
from ap_build.resources import read_cache, write_cache

# Files a build leaves behind that differ from run to run and that nothing in the image needs (fontconfig's caches
# record directory mtimes, which the rewrite clamps: fontconfig would discard them anyway).
VOLATILE = re.compile(
    r"^(var/log/.+|var/cache/ldconfig/aux-cache|var/cache/debconf/[^/]+-old|var/lib/dpkg/[^/]+-old"
    r"|var/cache/apt/.+|var/lib/apt/lists/.+|tmp/.+|root/\.cache/.+|run/.+|etc/machine-id"
    r"|var/lib/dbus/machine-id|var/lib/systemd/random-seed|var/cache/fontconfig/.+)$"
)
NORMALISER = 4  # bump when the rewrite changes: it keys the memo of normalised images
# config keys that record the build host or the build run, not the image
# (`parent` and history comments name the build's intermediate images, which differ from run to run)
_HOST_KEYS = ("container", "container_config", "docker_version", "Hostname", "Domainname", "parent")


CHUNK = 1 << 20  # bytes handed to the engine at a time
_BLOCK, _RECORD = tarfile.BLOCKSIZE, tarfile.RECORDSIZE


@dataclass(frozen=True)
class _Entry:
    header: bytes  # the entry's tar header(s), as tarfile writes them
    source: tarfile.TarInfo | None  # the input member whose data follows (None: no data)
    size: int
    pyc: bool  # a byte-code cache whose recorded source mtime is clamped


def _name(member: tarfile.TarInfo) -> str:
    return member.name.lstrip("./") if member.name.startswith("./") else member.name.lstrip("/")


def plan_layer(tin: tarfile.TarFile, epoch: int) -> list[_Entry]:
    """The normalised layer's entries, in order, from the layer `tin` (headers built, data not read yet)."""
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
    entries = []
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
        data = m.type in (tarfile.REGTYPE, tarfile.AREGTYPE)
        m.size = content.size if data else 0
        entries.append(_Entry(m.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"), content if data else None,
                              m.size, data and name.endswith(".pyc") and "__pycache__/" in name))
    return entries


def _padded(size: int, unit: int = _BLOCK) -> int:
    return -(-size // unit) * unit


def layer_size(entries: list[_Entry]) -> int:
    """Bytes of the tar `layer_chunks` writes for `entries` (pure): headers, padded data, the end, the record."""
    return _padded(sum(len(e.header) + _padded(e.size) for e in entries) + 2 * _BLOCK, _RECORD)


def layer_chunks(tin: tarfile.TarFile, entries: list[_Entry], epoch: int, digest: Any) -> Iterator[bytes]:
    """The normalised layer's bytes (a PAX tar, byte for byte as `tarfile` writes it), hashed into `digest`."""
    buf, written = bytearray(), 0

    def flush() -> bytes:
        nonlocal written
        out = bytes(buf)
        digest.update(out)
        written += len(out)
        buf.clear()
        return out

    for e in entries:
        buf += e.header
        if e.source is not None and e.size:
            stream = tin.extractfile(e.source)
            assert stream is not None  # a regular file's member
            if e.pyc:
                buf += pyc_clamped(stream.read(e.size), epoch)
            else:
                left = e.size
                while left:
                    if len(buf) >= CHUNK:
                        yield flush()
                    data = stream.read(min(CHUNK, left))
                    if not data:
                        raise EngineError(f"the saved layer ends inside {e.source.name}")
                    buf += data
                    left -= len(data)
            buf += tarfile.NUL * (_padded(e.size) - e.size)
        if len(buf) >= CHUNK:
            yield flush()
    buf += tarfile.NUL * (2 * _BLOCK)
    buf += tarfile.NUL * (_padded(written + len(buf), _RECORD) - written - len(buf))
    yield flush()


def normalise_layer(src: Path | IO[bytes], dst: Path, epoch: int) -> str:
    """Rewrite the layer tar `src` (a file, or a seekable stream) deterministically into `dst`; return its diff ID
    (`sha256:` of the tar)."""
    source = {"name": src} if isinstance(src, Path) else {"fileobj": src, "mode": "r:"}
    digest = hashlib.sha256()
    with tarfile.open(**source) as tin, dst.open("wb") as out:  # type: ignore[call-overload]
        for chunk in layer_chunks(tin, plan_layer(tin, epoch), epoch, digest):
            out.write(chunk)
    return "sha256:" + digest.hexdigest()


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


def _header(name: str, size: int, epoch: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, epoch, 0o644
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _file(name: str, data: bytes, epoch: int) -> bytes:
    return _header(name, len(data), epoch) + data + tarfile.NUL * (_padded(len(data)) - len(data))


def _config_and_manifest(cfg: bytes, layers: list[str], epoch: int) -> tuple[bytes, str]:
    """The end of a docker-archive (the config `cfg`, manifest.json naming `layers`, the end blocks) and the image
    ID it loads as (pure)."""
    cfg_hex = hashlib.sha256(cfg).hexdigest()
    entry = [{"Config": f"{cfg_hex}.json", "RepoTags": [], "Layers": layers}]
    tail = _file(f"{cfg_hex}.json", cfg, epoch) + _file("manifest.json", json.dumps(entry).encode(), epoch)
    return tail + tarfile.NUL * (2 * _BLOCK), f"sha256:{cfg_hex}"


def _archive(saved: tarfile.TarFile, image_id: str, base_layers: list[str], epoch: int, placeholders: bool,
             out: dict[str, str]) -> Iterator[bytes]:
    """The normalised image as a docker-archive, written as it is read from the saved one (`saved`): each layer
    the build added rewritten on the fly, the base's own layers unchanged (or, with `placeholders`, as empty
    files: the engine has them, and checks each layer it does read against its diff ID), then the config and
    manifest.json. Sets out["id"], the new image ID, once the last byte is out."""
    manifest = json.load(saved.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
    config = json.load(saved.extractfile(manifest["Config"]))  # type: ignore[arg-type]
    raw_ids = list(config["rootfs"]["diff_ids"])
    diff_ids, paths = [], []
    for i, path in enumerate(manifest["Layers"]):
        member, name = saved.getmember(path), f"{i}/layer.tar"
        inner = saved.extractfile(member)  # read in place: the saved archive is uncompressed and seekable
        if inner is None:
            raise EngineError(f"the saved image {image_id[:19]} has no layer {path}")
        if i < len(base_layers) and raw_ids[i] == base_layers[i]:  # the base's own layer, unchanged
            size = 0 if placeholders else member.size
            yield _header(name, size, epoch)
            while size and (data := inner.read(CHUNK)):
                yield data
            yield tarfile.NUL * (_padded(size) - size)
            diff_ids.append(raw_ids[i])
        else:
            with tarfile.open(fileobj=inner, mode="r:") as tin:
                entries = plan_layer(tin, epoch)
                size, digest, sent = layer_size(entries), hashlib.sha256(), 0
                yield _header(name, size, epoch)
                for chunk in layer_chunks(tin, entries, epoch, digest):
                    sent += len(chunk)
                    yield chunk
                if sent != size:  # never: layer_size mirrors layer_chunks
                    raise EngineError(f"layer {i} of {image_id[:19]}: wrote {sent} bytes, announced {size}")
            diff_ids.append("sha256:" + digest.hexdigest())
        paths.append(name)
    tail, out_id = _config_and_manifest(normalise_config(config, diff_ids, epoch), paths, epoch)
    yield tail
    out["id"] = out_id


def normalise(engine: Any, image_id: str, base_layers: list[str], epoch: int, tag: str,
              workdir: Path | None = None) -> str:
    """Save `image_id`, rewrite the layers it adds to `base_layers`, load the result as `tag`; its image ID.

    The rewrite is streamed into the engine's load as it is made (no rewritten copy on disk), and the base's
    layers, which the engine has (the build ran FROM them), are sent as empty placeholders; an engine that
    refuses those (one that reads every layer of an archive) is sent the archive again whole."""
    with tempfile.TemporaryDirectory(prefix="ap-build-repro-", dir=workdir) as tmp:
        archive = engine.save(image_id, Path(tmp) / "raw.tar")
        out: dict[str, str] = {}
        with tarfile.open(archive) as saved:
            try:
                engine.load(_archive(saved, image_id, base_layers, epoch, bool(base_layers), out))
            except EngineError:
                if not base_layers:
                    raise
                engine.load(_archive(saved, image_id, base_layers, epoch, False, out))
    return _loaded(engine, out.get("id", ""), image_id, tag)


def restamp(engine: Any, image_id: str, epoch: int, tag: str) -> str | None:
    """The config-only normalisation of an image whose layers the engine already wrote deterministically (built
    with `timestamp`, see `stamped`): the config rewritten as `normalise_config` does, loaded with every layer an
    empty placeholder (the engine holds them all). Only the saved archive's config and manifest are read, as
    it streams past. None if the engine refuses placeholders (the caller normalises in full)."""
    manifest: dict[str, Any] = {}
    config: dict[str, Any] = {}
    with tarfile.open(fileobj=_Chunks(engine.save_stream(image_id)), mode="r|") as saved:
        for member in saved:
            if member.isfile() and member.name.endswith(".json") and "/" not in member.name:
                doc = json.load(saved.extractfile(member))  # type: ignore[arg-type]
                if member.name == "manifest.json":
                    manifest = doc[0]
                elif "rootfs" in doc:
                    config = doc
    if not manifest or not config:
        raise EngineError(f"the saved image {image_id[:19]} has no manifest or config")
    diff_ids = list(config["rootfs"]["diff_ids"])
    names = [f"{i}/layer.tar" for i in range(len(diff_ids))]
    tail, new_id = _config_and_manifest(normalise_config(config, diff_ids, epoch), names, epoch)
    try:
        engine.load(iter([b"".join(_header(n, 0, epoch) for n in names) + tail]))
    except EngineError:
        return None
    return _loaded(engine, new_id, image_id, tag)


def stamped(engine: Any, image_id: str, epoch: int) -> bool:
    """Whether the engine honoured the build's `timestamp` (the image is created at the epoch): then it wrote
    every file of the build's layers with that mtime, in its own deterministic order, and only the config
    records the build run."""
    created = str(engine.inspect(image_id).get("Created") or "")
    try:
        when = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return False
    return when.tzinfo is not None and int(when.timestamp()) == epoch


def _loaded(engine: Any, new_id: str, image_id: str, tag: str) -> str:
    if not new_id or not engine.image_exists(new_id):
        raise EngineError(f"the engine did not load the normalised image {new_id[:19] or 'of ' + image_id[:19]}")
    engine.tag(new_id, tag)
    return new_id


class _Chunks:
    """A read-only file over an iterator of byte chunks (the engine's streamed save), for `tarfile`'s stream
    mode; each byte is copied a bounded number of times however the chunks and reads are sized."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buf, self._pos = chunks, bytearray(), 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buf) - self._pos < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            del self._buf[: self._pos]  # drop what was read, only when more is needed
            self._pos = 0
            self._buf += chunk
        end = len(self._buf) if size < 0 else min(self._pos + size, len(self._buf))
        out = bytes(self._buf[self._pos : end])
        self._pos = end
        return out


def epoch_of(created: str) -> int:
    """SOURCE_DATE_EPOCH of a build: its `created` stamp (SOURCE_DATE_EPOCH, else the commit time)."""
    return int(dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp())


def _list_packages(engine: Any, image_id: str, cache: Path) -> bool:
    """Read (and cache) the dpkg package list of `image_id` on a connection of its own; whether it was read."""
    try:
        return bool(provenance.installed_packages(type(engine).connect(engine.host), image_id, cache))
    except ApBuildError:
        return False  # the provenance step reads it again, and reports a failure there


def reproducible(engine: Any, result: BuildReport, cache: Path, *, rewrite: bool = True) -> BuildReport | None:
    """The build `result` normalised (cached by the engine's own image ID, so a no-change rebuild stays fast).
    The engine built it with the build's `timestamp`: if it honoured it (`stamped`), only the config is rewritten
    (`restamp`); else the layers are rewritten too (`normalise`), or, without `rewrite`, None (not normalised)."""
    raw = result.image_id.removeprefix("sha256:")
    rel = f"reproducible/{NORMALISER}-{raw}"
    new = (read_cache(rel, cache) or "").strip()
    if new and engine.image_exists(new):
        engine.tag(new, result.tag)
    else:
        epoch = epoch_of(result.created)
        by_engine = stamped(engine, result.image_id, epoch)
        if not by_engine and not rewrite:
            return None
        with ThreadPoolExecutor(1) as pool:  # the provenance's package list, read while the engine saves
            listed = pool.submit(_list_packages, engine, result.image_id, cache)
            new = restamp(engine, result.image_id, epoch, result.tag) if by_engine else None
            if new is None:
                base_layers = list(engine.inspect(result.base)["RootFS"]["Layers"] or [])
                new = normalise(engine, result.image_id, base_layers, epoch, result.tag)
            if listed.result():
                provenance.share_packages(new, result.image_id, cache)
        write_cache(rel, new + "\n", cache)
    return replace(result, image_id=new, size_bytes=int(engine.inspect(new).get("Size") or 0))
