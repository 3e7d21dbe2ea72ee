"""Platforms: parsing `--platform`, the host's own, per-platform tags and the local multi-platform record."""

from __future__ import annotations

import pytest

from ap_build.errors import UsageError
from ap_build.images.platforms import (
    AMD64,
    ARM64,
    host_platform,
    parse_platforms,
    platform_tag,
    read_build,
    record_build,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("linux/amd64,linux/arm64", (AMD64, ARM64)),
    ("linux/arm64/v8, linux/arm64 ,aarch64", (ARM64,)),
    ("x86_64", (AMD64,)),
])
def test_parse_platforms(text: str, expected: tuple) -> None:
    assert parse_platforms(text) == expected


@pytest.mark.parametrize("text", ["", " , ", "linux/s390x", "windows/amd64", "darwin/arm64"])
def test_unsupported_platforms_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_platforms(text)


def test_names_each_tool_gives_an_architecture() -> None:
    assert (ARM64.name, ARM64.deb_arch, ARM64.machine, ARM64.variant) == ("linux/arm64", "arm64", "aarch64", "v8")
    assert (AMD64.deb_arch, AMD64.machine, AMD64.variant) == ("amd64", "x86_64", "")
    assert host_platform("aarch64") == ARM64 and host_platform("x86_64") == AMD64


def test_platform_tags() -> None:
    assert platform_tag("localhost/ap-build/python-base:1.2", ARM64) == "localhost/ap-build/python-base:1.2-arm64"
    assert platform_tag("127.0.0.1:5000/repo", AMD64) == "127.0.0.1:5000/repo:latest-amd64"


def test_the_record_of_a_multi_platform_build(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert read_build("x:1") is None
    assert record_build("x:1", {ARM64: "sha256:b", AMD64: "sha256:a"})
    assert read_build("x:1") == {AMD64: "sha256:a", ARM64: "sha256:b"}
    assert read_build("x:2") is None
