"""The OCI image index of a multi-platform push and the choices around it (pure parts, no engine)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from ap_build.errors import EngineError, SourceError, UsageError
from ap_build.images.index import (
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    IndexPush,
    PlatformPush,
    as_oci_manifest,
    index_document,
)
from ap_build.images.platform_images import (
    Picked,
    emulation_problem,
    image_platform,
    is_registry_ref,
    pick_for_host,
    select,
)
from ap_build.images.platforms import AMD64, ARM64

DOCKER = {
    "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1493,
               "digest": "sha256:" + "c" * 64},
    "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 10,
                "digest": "sha256:" + "1" * 64},
               {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "size": 20,
                "digest": "sha256:" + "2" * 64, "urls": ["https://example.invalid/layer"]}],
}


def test_a_docker_manifest_becomes_an_oci_manifest_over_the_same_blobs() -> None:
    oci = json.loads(as_oci_manifest(json.dumps(DOCKER).encode()))
    assert oci["mediaType"] == OCI_MANIFEST and oci["config"]["mediaType"] == OCI_CONFIG
    assert [layer["mediaType"] for layer in oci["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"]
    # same config (the image ID) and layers, byte counts and URLs kept
    assert oci["config"]["digest"] == DOCKER["config"]["digest"] and oci["config"]["size"] == 1493
    assert [(x["digest"], x["size"]) for x in oci["layers"]] == [(x["digest"], x["size"]) for x in DOCKER["layers"]]
    assert oci["layers"][1]["urls"] == ["https://example.invalid/layer"]


def test_an_oci_manifest_is_kept_byte_for_byte_and_an_index_is_refused() -> None:
    data = b'{"schemaVersion":2,"mediaType":"%s","config":{},"layers":[]}' % OCI_MANIFEST.encode()
    assert as_oci_manifest(data) == data
    with pytest.raises(ValueError):
        as_oci_manifest(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode())
    with pytest.raises(ValueError):
        as_oci_manifest(json.dumps({"schemaVersion": 1, "fsLayers": []}).encode())


def test_the_index_lists_each_platform_with_its_oci_platform_amd64_first() -> None:
    doc = json.loads(index_document({ARM64: ("sha256:" + "b" * 64, 406), AMD64: ("sha256:" + "a" * 64, 405)}))
    assert doc["schemaVersion"] == 2 and doc["mediaType"] == OCI_INDEX
    assert doc["manifests"] == [
        {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 405,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "b" * 64, "size": 406,
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
    ]


def test_the_push_report_lists_each_platform_and_the_index() -> None:
    pushed = IndexPush("r.example/ap/x:1@sha256:" + "0" * 64,
                       [PlatformPush(AMD64, "sha256:" + "9" * 64, "r.example/ap/x:1-amd64@sha256:" + "a" * 64)],
                       {"linux/amd64": "r.example/ap/x:sha256-aaa.att"})
    d = pushed.to_dict()
    assert (d["digest"], d["media_type"]) == ("sha256:" + "0" * 64, OCI_INDEX)
    assert d["platforms"] == [{"platform": "linux/amd64", "image_id": "sha256:" + "9" * 64,
                               "digest": "sha256:" + "a" * 64,
                               "reference": "r.example/ap/x:1-amd64@sha256:" + "a" * 64,
                               "attestations": "r.example/ap/x:sha256-aaa.att"}]


def test_select_restricts_to_built_platforms() -> None:
    record = {ARM64: "sha256:b", AMD64: "sha256:a"}
    assert list(select(record, None, "t")) == [AMD64, ARM64]
    assert select(record, (ARM64,), "t") == {ARM64: "sha256:b"}
    with pytest.raises(UsageError, match="was built for linux/arm64, not linux/amd64"):
        select({ARM64: "sha256:b"}, (AMD64,), "t")


@pytest.mark.parametrize(("ref", "expected"), [
    ("127.0.0.1:5000/ap/x:1", True), ("registry.example/ap/x", True), ("localhost:5000/x:1", True),
    ("localhost/ap-build/python-base:1", False), ("ubuntu:24.04", False), ("library/ubuntu", False),
])
def test_registry_references(ref: str, expected: bool) -> None:
    assert is_registry_ref(ref) is expected


def test_image_platform_reads_the_engines_inspect() -> None:
    assert image_platform({"Os": "linux", "Architecture": "arm64"}) == ARM64
    assert image_platform({"Architecture": "amd64"}) == AMD64
    assert image_platform({"Os": "linux", "Architecture": "s390x"}) is None


def test_running_another_platform_needs_its_emulation(tmp_path: Path) -> None:
    local = SimpleNamespace(host="unix:///run/podman/podman.sock")
    assert emulation_problem(local, AMD64, AMD64, tmp_path) is None  # native
    (tmp_path / "status").write_text("enabled\n")
    why, fix = emulation_problem(local, ARM64, AMD64, tmp_path) or ("", "")
    assert "cannot run linux/arm64 images on this linux/amd64 machine" in why and "qemu-aarch64" in why
    assert "update-binfmts --enable qemu-aarch64" in fix
    interpreter = tmp_path / "qemu-aarch64-static"
    interpreter.write_text("")
    (tmp_path / "qemu-aarch64").write_text(f"enabled\ninterpreter {interpreter}\nflags: F\n")
    assert emulation_problem(local, ARM64, AMD64, tmp_path) is None  # running needs no arch-test
    (tmp_path / "qemu-aarch64").write_text(f"disabled\ninterpreter {interpreter}\nflags: F\n")
    assert "disabled" in (emulation_problem(local, ARM64, AMD64, tmp_path) or ("",))[0]
    remote = SimpleNamespace(host="tcp://10.0.0.1:2375")  # its machine, not this one, runs the containers
    assert emulation_problem(remote, ARM64, AMD64, tmp_path / "none") is None


class FakeEngine:
    """The few engine calls `pick_for_host` makes, over a dict of local images (ref -> architecture)."""

    host = "unix:///run/podman/podman.sock"

    def __init__(self, local: dict[str, str], registry: dict[str, str] | None = None) -> None:
        self.local, self.registry, self.pulls = dict(local), registry, []

    def image_exists(self, ref: str) -> bool:
        return ref in self.local

    def inspect(self, ref: str) -> dict:
        if ref not in self.local:
            raise EngineError(f"image {ref} not found in the engine")
        return {"Id": ref, "Os": "linux", "Architecture": self.local[ref]}

    def pull(self, ref: str, platform: str | None = None) -> str:
        self.pulls.append((ref, platform))
        if self.registry is None:
            raise SourceError(f"could not pull {ref}: connection refused")
        self.local[ref] = self.registry.get(platform or "", "amd64")
        return ref


REG = "127.0.0.1:5000/ap/x:1"


def test_pick_runs_a_local_image_of_this_platform_as_it_is_and_never_pulls_a_local_name() -> None:
    engine = FakeEngine({REG: "amd64", "my-repo:dev": "arm64"})
    assert pick_for_host(engine, REG, AMD64) == Picked(REG, engine.inspect(REG))
    mine = pick_for_host(engine, "my-repo:dev", AMD64)  # not a registry reference: runs (emulated) as it is
    assert mine is not None and (mine.platform, mine.note) == (ARM64, None)
    assert pick_for_host(engine, "my-repo:none", AMD64) is None and engine.pulls == []


def test_pick_pulls_a_registry_tag_held_for_another_platform_or_missing() -> None:
    engine = FakeEngine({REG: "arm64"}, registry={"linux/amd64": "amd64", "linux/arm64": "arm64"})
    picked = pick_for_host(engine, REG, AMD64)
    assert picked is not None and picked.platform == AMD64 and picked.note == f"pulled {REG} for linux/amd64"
    assert engine.pulls == [(REG, "linux/amd64")]
    single = FakeEngine({}, registry={})  # a single-platform amd64 tag, pulled on an arm64 machine
    picked = pick_for_host(single, REG, ARM64)
    assert picked is not None and picked.platform == AMD64 and "its registry has no linux/arm64 image" in picked.note


def test_pick_falls_back_to_the_other_platform_when_the_pull_fails_and_says_so() -> None:
    engine = FakeEngine({REG: "arm64"}, registry=None)
    picked = pick_for_host(engine, REG, AMD64)
    assert picked is not None and picked.platform == ARM64
    assert "could not be pulled" in picked.note and "running linux/arm64 under emulation" in picked.note
    with pytest.raises(SourceError):
        pick_for_host(FakeEngine({}, registry=None), REG, AMD64)
