"""Target platforms (`linux/amd64`, `linux/arm64`): parsing, the host's own, the names each tool gives an
architecture, and the local record of a multi-platform build.

A multi-platform build leaves one local image per platform, tagged `<tag>-<arch>` (the host's platform also
under `<tag>` itself), and records which image ID each platform got under the tag in ap-build's cache, so
`image push <tag>` can push them all and one OCI image index. Pure functions, except `host_platform` (reads
the machine) and the record's read and write (the cache).
"""

from __future__ import annotations

import hashlib
import json
import platform as _platform
from dataclasses import dataclass

from ap_build.errors import UsageError
from ap_build.resources import read_cache, write_cache


@dataclass(frozen=True, order=True)
class Platform:
    """One OCI platform; only Linux on amd64 and arm64 is supported."""

    arch: str  # OCI/Go name: amd64 | arm64
    os: str = "linux"

    @property
    def name(self) -> str:
        """`linux/arm64`: what `--platform` takes and the engine's build API expects."""
        return f"{self.os}/{self.arch}"

    @property
    def variant(self) -> str:
        """The OCI variant an index records (`v8` for arm64, as Docker and Podman write it)."""
        return _ARCHES[self.arch]["variant"]

    @property
    def deb_arch(self) -> str:
        """Debian's name (mmdebstrap `--arch`, dpkg)."""
        return _ARCHES[self.arch]["deb"]

    @property
    def machine(self) -> str:
        """The kernel's name (`uname -m`), as in the AWS CLI's zip and the qemu binfmt handler."""
        return _ARCHES[self.arch]["machine"]

    def __str__(self) -> str:
        return self.name


_ARCHES: dict[str, dict[str, str]] = {
    "amd64": {"deb": "amd64", "machine": "x86_64", "variant": ""},
    "arm64": {"deb": "arm64", "machine": "aarch64", "variant": "v8"},
}
_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
            "arm64/v8": "arm64"}
AMD64, ARM64 = Platform("amd64"), Platform("arm64")


def parse_platform(text: str) -> Platform:
    """`linux/arm64`, `linux/arm64/v8`, `arm64` or `aarch64` -> Platform (pure)."""
    raw = text.strip().lower()
    os_name, _, arch = raw.partition("/") if "/" in raw else ("linux", "", raw)
    if os_name != "linux" or _ALIASES.get(arch) is None:
        raise UsageError(f"unsupported platform {text!r}",
                         hint="use linux/amd64, linux/arm64 or both: --platform linux/amd64,linux/arm64")
    return Platform(_ALIASES[arch])


def parse_platforms(text: str) -> tuple[Platform, ...]:
    """A comma-separated `--platform` list -> platforms, in the given order, without repeats (pure)."""
    items = [item for item in (part.strip() for part in text.split(",")) if item]
    if not items:
        raise UsageError("--platform is empty", hint="use linux/amd64, linux/arm64 or both, comma-separated")
    return tuple(dict.fromkeys(parse_platform(item) for item in items))


def host_platform(machine: str | None = None) -> Platform:
    """This machine's platform (from `uname -m`; `machine` for tests)."""
    m = (machine or _platform.machine()).lower()
    return Platform(_ALIASES.get(m, m))


def platform_tag(tag: str, target: Platform) -> str:
    """The local tag of one platform's image of a multi-platform build: `repo:tag` -> `repo:tag-arm64` (pure)."""
    repo, sep, name = tag.rpartition(":")
    if not sep or "/" in name:  # no tag part (`repo` or `host:5000/repo`)
        return f"{tag}:latest-{target.arch}"
    return f"{repo}:{name}-{target.arch}"


def _record_path(tag: str) -> str:
    return f"platforms/{hashlib.sha256(tag.encode()).hexdigest()[:32]}.json"


def record_build(tag: str, images: dict[Platform, str]) -> bool:
    """Remember which image ID each platform of a multi-platform build under `tag` got (ap-build's cache)."""
    doc = {"tag": tag, "platforms": {p.name: image_id for p, image_id in sorted(images.items())}}
    return write_cache(_record_path(tag), json.dumps(doc, indent=2) + "\n")


def read_build(tag: str) -> dict[Platform, str] | None:
    """The platforms and image IDs recorded for `tag`, or None (never built multi-platform, or lost)."""
    text = read_cache(_record_path(tag))
    if text is None:
        return None
    try:
        doc = json.loads(text)
        if doc.get("tag") != tag:
            return None
        return {parse_platform(name): str(image_id) for name, image_id in doc["platforms"].items()}
    except (ValueError, KeyError, TypeError, AttributeError, UsageError):
        return None
