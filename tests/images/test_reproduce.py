"""Layer and config normalisation (reproduce.py) on real tar files: order, mtimes, owners, volatile files,
hard links and xattrs; the config's timestamps and host fields."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from ap_build.images import reproduce

EPOCH = 1735689600


def layer(path: Path, entries: list[tuple[str, bytes | None, dict]]) -> Path:
    """A layer tar: (name, data or None for a directory, TarInfo attributes) in the order given."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data, attrs in entries:
            info = tarfile.TarInfo(name)
            for k, v in attrs.items():
                setattr(info, k, v)
            if data is None and info.type == tarfile.REGTYPE and "type" not in attrs:
                info.type = tarfile.DIRTYPE
            info.size = len(data) if data is not None and info.type == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if data is not None and info.type == tarfile.REGTYPE else None)
    return path


def test_two_orders_and_clocks_give_one_layer(tmp_path) -> None:
    a = layer(tmp_path / "a.tar", [
        ("usr/", None, {"mtime": 1_800_000_000}),
        ("usr/bin/tool", b"#!/bin/sh\n", {"mtime": 1_800_000_001, "mode": 0o755, "uname": "root"}),
        ("opt/app/", None, {"mtime": 1_800_000_002, "uid": 1000, "gid": 1000, "uname": "analyticalplatform"}),
        ("var/log/dpkg.log", b"2026-12-07 02:00 install\n", {"mtime": 1_800_000_003}),
        ("var/cache/ldconfig/aux-cache", b"\x01\x02", {"mtime": 1_800_000_003}),
        ("var/cache/fontconfig/3830d5c3-le64.cache-9", b"\x03", {"mtime": 1_800_000_003}),
        ("old/", None, {"mtime": 10}),
    ])
    b = layer(tmp_path / "b.tar", [
        ("old/", None, {"mtime": 10}),
        ("opt/app/", None, {"mtime": 1_900_000_000, "uid": 1000, "gid": 1000, "uname": "someone"}),
        ("var/log/dpkg.log", b"2026-12-08 03:00 install\n", {"mtime": 1_900_000_003}),
        ("usr/bin/tool", b"#!/bin/sh\n", {"mtime": 1_900_000_001, "mode": 0o755}),
        ("usr/", None, {"mtime": 1_900_000_000}),
    ])
    da = reproduce.normalise_layer(a, tmp_path / "a.out", EPOCH)
    db = reproduce.normalise_layer(b, tmp_path / "b.out", EPOCH)
    assert da == db
    assert (tmp_path / "a.out").read_bytes() == (tmp_path / "b.out").read_bytes()
    with tarfile.open(tmp_path / "a.out") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and "var/log/dpkg.log" not in names and "var/cache/ldconfig/aux-cache" not in names
    assert not any(n.startswith("var/cache/fontconfig/") for n in names)
    app = next(m for m in members if m.name == "opt/app")
    assert (app.uid, app.gid, app.uname) == (1000, 1000, "") and app.mtime == EPOCH
    assert next(m for m in members if m.name == "old").mtime == 10  # older than the epoch: kept
    assert next(m for m in members if m.name == "usr/bin/tool").mode == 0o755


def test_a_hard_link_sorted_before_its_target_is_turned_around(tmp_path) -> None:
    src = layer(tmp_path / "l.tar", [
        ("usr/bin/zz-python3.13", b"ELF", {"mode": 0o755}),
        ("usr/bin/aa-python3", b"", {"type": tarfile.LNKTYPE, "linkname": "usr/bin/zz-python3.13"}),
        ("usr/bin/wh/.wh.gone", b"", {}),
    ])
    reproduce.normalise_layer(src, tmp_path / "l.out", EPOCH)
    with tarfile.open(tmp_path / "l.out") as tar:
        first, second = tar.getmember("usr/bin/aa-python3"), tar.getmember("usr/bin/zz-python3.13")
        assert first.isreg() and tar.extractfile(first).read() == b"ELF"  # type: ignore[union-attr]
        assert second.islnk() and second.linkname == "usr/bin/aa-python3"
        assert tar.getmember("usr/bin/wh/.wh.gone").isreg()  # whiteouts are kept


def test_xattrs_are_kept_other_pax_headers_dropped(tmp_path) -> None:
    src = tmp_path / "x.tar"
    with tarfile.open(src, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("usr/bin/ping")
        info.size, info.mtime = 3, 1_800_000_000.25
        info.pax_headers = {"SCHILY.xattr.security.capability": "cap", "atime": "1800000000.5"}
        tar.addfile(info, io.BytesIO(b"bin"))
    reproduce.normalise_layer(src, tmp_path / "x.out", EPOCH)
    with tarfile.open(tmp_path / "x.out") as tar:
        m = tar.getmember("usr/bin/ping")
    assert m.pax_headers == {"SCHILY.xattr.security.capability": "cap"} and m.mtime == EPOCH


def test_config_has_the_epoch_everywhere_and_no_build_host() -> None:
    config = {"architecture": "amd64", "os": "linux", "created": "2026-12-07T02:00:01.123Z", "container": "abc",
              "config": {"Env": ["A=1"], "Hostname": "builder-7", "Labels": {"x": "y"}},
              "history": [{"created": "2026-12-07T02:00:00Z", "created_by": "RUN x", "comment": "FROM 1a2b3c"}],
              "parent": "sha256:1a2b3c",
              "rootfs": {"type": "layers", "diff_ids": ["sha256:old"]}}
    out = json.loads(reproduce.normalise_config(config, ["sha256:new"], EPOCH))
    assert out["created"] == "2025-01-01T00:00:00Z" and out["history"][0]["created"] == "2025-01-01T00:00:00Z"
    assert "comment" not in out["history"][0] and "parent" not in out
    assert "container" not in out and "Hostname" not in out["config"] and out["config"]["Labels"] == {"x": "y"}
    assert out["rootfs"]["diff_ids"] == ["sha256:new"]
    assert reproduce.normalise_config(config, ["sha256:new"], EPOCH) == reproduce.normalise_config(
        {**config, "created": "2030-01-01T00:00:00Z", "container": "def"}, ["sha256:new"], EPOCH)


def test_pyc_headers_record_the_clamped_source_mtime(tmp_path) -> None:
    import importlib.util

    body = b"\xe3marshalled code"
    size = (42).to_bytes(4, "little")
    late = importlib.util.MAGIC_NUMBER + b"\0\0\0\0" + (1_800_000_000).to_bytes(4, "little") + size
    early = importlib.util.MAGIC_NUMBER + b"\0\0\0\0" + (1_000).to_bytes(4, "little") + size
    hashed = importlib.util.MAGIC_NUMBER + b"\1\0\0\0" + b"12345678"
    assert reproduce.pyc_clamped(late + body, EPOCH)[8:12] == EPOCH.to_bytes(4, "little")
    assert reproduce.pyc_clamped(late + body, EPOCH)[12:] == (42).to_bytes(4, "little") + body
    assert reproduce.pyc_clamped(early + body, EPOCH) == early + body
    assert reproduce.pyc_clamped(hashed + body, EPOCH) == hashed + body  # hash-based: no timestamp in it
    src = layer(tmp_path / "p.tar", [("opt/venv/m.py", b"x = 1\n", {"mtime": 1_800_000_000}),
                                     ("opt/venv/__pycache__/m.cpython-313.pyc", late + body, {"mtime": 1_800_000_001})])
    reproduce.normalise_layer(src, tmp_path / "p.out", EPOCH)
    with tarfile.open(tmp_path / "p.out") as tar:
        pyc = tar.extractfile("opt/venv/__pycache__/m.cpython-313.pyc").read()  # type: ignore[union-attr]
        assert int.from_bytes(pyc[8:12], "little") == tar.getmember("opt/venv/m.py").mtime == EPOCH


def saved_image(path: Path, base: Path, top: Path) -> tuple[Path, str]:
    """A `docker save` archive of a two-layer image (base, top); the base layer's diff ID."""
    import hashlib

    ids = [f"sha256:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in (base, top)]
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-12-07T02:00:01Z",
                         "history": [{"created": "2026-12-07T02:00:00Z"}] * 2,
                         "rootfs": {"type": "layers", "diff_ids": ids}}).encode()
    manifest = json.dumps([{"Config": "c.json", "Layers": ["a.tar", "b.tar"]}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in (("a.tar", base.read_bytes()), ("b.tar", top.read_bytes()), ("c.json", config),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path, ids[0]


def test_the_streamed_archive_sends_the_base_as_a_placeholder_and_is_one_image_either_way(tmp_path) -> None:
    """What `normalise` streams into the engine's load: a docker-archive whose base layer is an empty file (the engine
    has it) or, for an engine that refuses that, the layer itself; the same image ID and rewritten layer both ways."""
    base = layer(tmp_path / "base.tar", [("etc/os-release", b"ID=debian\n", {"mtime": 10})])
    top = layer(tmp_path / "top.tar", [("opt/x", b"x", {"mtime": 1_900_000_000}), ("opt/", None, {})])
    archive, base_id = saved_image(tmp_path / "saved.tar", base, top)
    got = {}
    for placeholders in (True, False):
        out: dict[str, str] = {}
        with tarfile.open(archive) as saved:
            body = b"".join(reproduce._archive(saved, "sha256:raw", [base_id], EPOCH, placeholders, out))
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
            config = json.load(tar.extractfile(manifest["Config"]))  # type: ignore[arg-type]
            sizes = [tar.getmember(p).size for p in manifest["Layers"]]
            top_bytes = tar.extractfile(manifest["Layers"][1]).read()  # type: ignore[union-attr]
        assert out["id"] == "sha256:" + manifest["Config"].removesuffix(".json")
        assert config["rootfs"]["diff_ids"][0] == base_id and config["created"] == "2025-01-01T00:00:00Z"
        got[placeholders] = (out["id"], sizes, top_bytes)
    assert got[True][0] == got[False][0] and got[True][2] == got[False][2]
    assert got[True][1][0] == 0 and got[False][1][0] == base.stat().st_size
    reproduce.normalise_layer(top, tmp_path / "top.out", EPOCH)
    assert got[True][2] == (tmp_path / "top.out").read_bytes()  # streamed byte for byte as written to a file


def test_the_streamed_save_is_read_as_a_tar_whatever_its_chunks() -> None:
    """`restamp` reads the engine's save as it streams: a tar cut into chunks of any size reads whole."""
    from ap_build.images.reproduce import _Chunks

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, size in (("0/layer.tar", 70_000), ("cfg.json", 13), ("manifest.json", 700)):
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(bytes([len(name)]) * size))
    data = raw.getvalue()
    for cut in (1, 511, 4096, 1 << 20):
        chunks = iter([data[i : i + cut] for i in range(0, len(data), cut)])
        with tarfile.open(fileobj=_Chunks(chunks), mode="r|") as saved:
            got = {m.name: saved.extractfile(m).read() for m in saved if m.name.endswith(".json")}
        assert got == {"cfg.json": bytes([8]) * 13, "manifest.json": bytes([13]) * 700}, cut
