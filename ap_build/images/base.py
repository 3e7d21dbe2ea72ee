"""Bootstrapped base images: a Debian root filesystem from its archive (mmdebstrap), imported into the engine.

The default base on a machine that reaches no registry. Reproducible: the package set comes from one
suite of one mirror (point `mirror` at snapshot.debian.org/archive/debian/<timestamp> to freeze it)
and every timestamp is clamped to SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ap_build.engine import Engine
from ap_build.errors import SourceError, ToolError, UsageError
from ap_build.images.platforms import Platform
from ap_build.images.spec import check_url, common, parse_epoch

COMPONENTS = "main contrib non-free non-free-firmware"
SNAPSHOT = "http://snapshot.debian.org/archive"
RECIPE = 2  # bump when the bootstrap recipe changes: it is part of the image key

# Container images need no manuals, docs or translations (copyright files stay). The dpkg
# configuration persists in the image, so packages installed later are trimmed the same way.
DPKG_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
)


@dataclass(frozen=True)
class BootstrapSpec:
    """What a bootstrapped base is made from; the defaults are images/common/image.toml's [bootstrap]."""

    suite: str
    mirror: str
    security_mirror: str
    epoch: int
    platform: Platform | None = None  # the target architecture (mmdebstrap --arch); None: this machine's
    variant: str = "minbase"  # mmdebstrap's --variant (a runtime's base is minbase; `extract` for tiny stand-ins)
    include: tuple[str, ...] = ()  # packages added to the variant's (mmdebstrap --include)

    @classmethod
    def default(cls) -> BootstrapSpec:
        table = common()["bootstrap"]
        return cls(suite=str(table["suite"]), mirror=str(table["mirror"]),
                   security_mirror=str(table["security_mirror"]), epoch=int(table["epoch"]))

    def sources(self) -> list[str]:
        """apt source lines for the bootstrap (pure)."""
        lines = [
            f"deb {self.mirror} {self.suite} {COMPONENTS}",
            f"deb {self.mirror} {self.suite}-updates {COMPONENTS}",
        ]
        if self.security_mirror:
            lines.append(f"deb {self.security_mirror} {self.suite}-security {COMPONENTS}")
        return lines

    @property
    def ref(self) -> str:
        """Local image reference; the key covers every input so a change of mirror is a new image, and an
        explicit architecture is in both the key and the name (the native base keeps its name)."""
        inputs = [*self.sources(), str(self.epoch), str(RECIPE)]
        if (self.variant, self.include) != ("minbase", ()):
            inputs += [self.variant, ",".join(self.include)]
        if self.platform is None:
            key = hashlib.sha256("\n".join(inputs).encode()).hexdigest()[:12]
            return f"localhost/ap-build/debian:{self.suite}-{key}"
        key = hashlib.sha256("\n".join([*inputs, self.platform.deb_arch]).encode()).hexdigest()[:12]
        return f"localhost/ap-build/debian:{self.suite}-{self.platform.arch}-{key}"


def make_rootfs(spec: BootstrapSpec, tarball: Path) -> Path:
    """Write the root filesystem tarball (side effect: mmdebstrap, network to the mirror)."""
    if not shutil.which("mmdebstrap"):
        raise ToolError(
            "mmdebstrap is not installed, so no base root filesystem can be bootstrapped",
            hint="run scripts/setup.sh (or apt-get install mmdebstrap), or pass --base IMAGE@sha256:...",
        )
    cmd = [
        "mmdebstrap", f"--variant={spec.variant}", "--format=tar", "--quiet",
        *([f"--include={','.join(spec.include)}"] if spec.include else []),
        *([f"--arch={spec.platform.deb_arch}"] if spec.platform else []),
        f"--components={COMPONENTS.replace(' ', ',')}",
        *(f"--dpkgopt={opt}" for opt in DPKG_EXCLUDES),
        # no apt lists, caches or backup files in the base layer: they are waste
        "--customize-hook=rm -rf $1/var/lib/apt/lists/* $1/var/cache/apt/* $1/var/cache/debconf/*-old"
        " $1/var/lib/dpkg/*-old $1/var/log/*.log $1/var/log/apt/*",
        spec.suite, str(tarball), *spec.sources(),
    ]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(spec.epoch)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SourceError(
            f"mmdebstrap could not bootstrap {spec.suite} from {spec.mirror}: {tail[0]}",
            hint="check the mirror (--apt-mirror / --snapshot) and that it is reachable",
        )
    return tarball


def bootstrap(engine: Engine, spec: BootstrapSpec | None = None, *, rebuild: bool = False) -> str:
    """Make (or reuse) the bootstrapped base image and return its reference."""
    spec = spec or BootstrapSpec.default()
    if not rebuild and engine.image_exists(spec.ref):
        return spec.ref
    with tempfile.TemporaryDirectory(prefix="ap-build-rootfs-") as tmp:
        tarball = make_rootfs(spec, Path(tmp) / "rootfs.tar")
        engine.import_tarball(tarball, spec.ref, changes=['CMD ["bash"]'],
                              platform=spec.platform.name if spec.platform else None)
    return spec.ref


def suites() -> list[str]:
    """The Debian suites the recipes carry pins for (images/common/image.toml)."""
    return [str(s) for s in common()["bootstrap"]["suites"]]


def _real_time(snapshot: str) -> bool:
    """`20250101T000000Z` names a time that exists (not month 13 or hour 25)."""
    try:
        dt.datetime.strptime(snapshot, "%Y%m%dT%H%M%SZ")
    except ValueError:
        return False
    return True


def spec_for(apt_mirror: str = "", snapshot: str = "", epoch: str = "", suite: str = "",
             security_mirror: str | None = None) -> BootstrapSpec:
    """The bootstrap spec for the CLI's settings (pure). `snapshot` freezes the archive at a timestamp
    (snapshot.debian.org's `YYYYMMDDTHHMMSSZ`), which makes the package set itself reproducible."""
    spec = BootstrapSpec.default()
    if suite:
        if suite not in suites():
            raise UsageError(f"unknown Debian suite {suite!r}",
                             hint=f"choose one of {', '.join(suites())} (images/common/image.toml)")
        spec = replace(spec, suite=suite)
    if snapshot:
        if not re.fullmatch(r"\d{8}T\d{6}Z", snapshot) or not _real_time(snapshot):
            raise UsageError(f"snapshot {snapshot!r} is not a timestamp like 20250101T000000Z",
                             hint="--snapshot takes snapshot.debian.org's YYYYMMDDTHHMMSSZ")
        spec = replace(spec, mirror=f"{SNAPSHOT}/debian/{snapshot}",
                       security_mirror=f"{SNAPSHOT}/debian-security/{snapshot}")
    elif apt_mirror:
        spec = replace(spec, mirror=check_url("apt_mirror", apt_mirror),
                       security_mirror=check_url("apt_mirror", security_mirror or ""))
    if epoch:
        spec = replace(spec, epoch=parse_epoch(epoch))
    return spec
