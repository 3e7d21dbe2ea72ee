"""What to build: a runtime, its versions and the sources every download comes from (pure, data-driven).

The data lives in `images/`: `sources.toml` (named source profiles), `<runtime>/image.toml`
(packages and versions), `common/cuda.toml` (CUDA versions per source), `common/wheels.lock`
(hash-pinned wheels). This module turns those files plus CLI options into one frozen `ImageSpec`.
"""

from __future__ import annotations

import os
import re
import string
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ap_build.errors import UsageError
from ap_build.images import arch
from ap_build.images.platforms import Platform, host_platform
from ap_build.platform import RUNTIMES
from ap_build.resources import data_dir

SOURCE_CHOICES = {"aws_cli": ("zip", "debian"), "cuda": ("nvidia", "pypi", "debian"), "r": ("cran", "distro")}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-((?:[^{}]|\$\{[^}]*\})*))?\}")


def expand(value: str, environ: dict[str, str] | None = None) -> str:
    """Expand `${VAR}` and `${VAR:-default}` (defaults may nest one level), as a shell would."""
    env = os.environ if environ is None else environ

    def sub(m: re.Match[str]) -> str:
        got = env.get(m.group(1))
        if got:
            return got
        return expand(m.group(2) or "", env)

    return _VAR.sub(sub, value)


@dataclass(frozen=True)
class Sources:
    """Where each download comes from. The values (and their defaults) live only in images/sources.toml."""

    name: str
    apt_mirror: str
    pypi_index: str
    ca_bundle: str
    aws_cli: str
    aws_cli_url: str
    aws_cli_key: str
    aws_cli_fingerprint: str
    cuda: str
    nvidia_repo: str
    nvidia_key_fingerprint: str
    r: str
    cran_repo: str
    cran_key_url: str
    cran_key_fingerprint: str

    def uses_loopback(self) -> bool:
        """True when a download URL points at this machine (the build then needs the host network)."""
        urls = (self.apt_mirror, self.pypi_index, self.aws_cli_url, self.nvidia_repo, self.cran_repo, self.cran_key_url)
        return any(re.search(r"//(127\.\d+\.\d+\.\d+|localhost|\[::1\])", u) for u in urls)


SETTINGS = tuple(f for f in Sources.__dataclass_fields__ if f != "name")


def load_sources(name_or_file: str = "upstream", overrides: dict[str, str] | None = None,
                 environ: dict[str, str] | None = None) -> Sources:
    """Read a named profile from images/sources.toml (or a TOML file of the same shape) and apply overrides."""
    profiles = _read_toml(data_dir("images") / "sources.toml")
    path = Path(name_or_file)
    if path.suffix == ".toml":
        if not path.is_file():
            raise UsageError(f"sources file {path} does not exist", hint="pass a profile name or a .toml file")
        table = _read_toml(path)
        own = table if all(isinstance(v, dict) for v in table.values()) and table else {"file": table}
        chosen, name = next(iter(own.values())), str(path)
    else:
        if name_or_file not in profiles or name_or_file == "auto":
            choices = [p for p in profiles if p != "auto"]
            raise UsageError(f"unknown sources profile {name_or_file!r}",
                             hint=f"choose auto, {', '.join(choices)} or pass a .toml file")
        chosen, name = profiles[name_or_file], name_or_file
    # every profile (and file) inherits unspecified keys from `upstream`
    profile = {**profiles.get("upstream", {}), **chosen}
    values: dict[str, Any] = {**profile, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    known = set(SETTINGS)
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"unknown source setting(s) {', '.join(unknown)} in {name}",
                         hint=f"known settings: {', '.join(sorted(known))}")
    missing = sorted(known - set(values))
    if missing:
        raise UsageError(f"source setting(s) {', '.join(missing)} missing from images/sources.toml's [upstream]")
    resolved = {k: expand(str(v), environ) for k, v in values.items()}
    for key, choices in SOURCE_CHOICES.items():
        if key in resolved and resolved[key] not in choices:
            raise UsageError(f"source setting {key}={resolved[key]!r} in {name} is not one of {', '.join(choices)}")
    for key, fields in URL_SETTINGS.items():
        check_url(key, resolved[key], fields, name)
    for key in ("aws_cli_fingerprint", "nvidia_key_fingerprint", "cran_key_fingerprint"):
        if not re.fullmatch(r"[0-9A-F]{40}", resolved[key]):
            raise UsageError(f"source setting {key}={resolved[key]!r} in {name} is not a 40-digit hex fingerprint",
                             hint=f"--{key.replace('_', '-')} takes the key's full fingerprint (gpg --with-colons)")
    return Sources(name=name, **resolved)


# URL settings and the `{placeholders}` each may carry (filled in by the recipe).
URL_SETTINGS: dict[str, tuple[str, ...]] = {
    "apt_mirror": (), "pypi_index": (), "aws_cli_url": ("version", "machine"), "nvidia_repo": ("distro", "cuda_arch"),
    "cran_repo": ("distro_family",), "cran_key_url": (),
}
# What a URL may contain on its way into a Dockerfile: RFC 3986's characters, minus the shell's `$`, quotes,
# backslash and backtick, and never whitespace or control characters (a newline would start an instruction).
_URL_CHARS = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!&+,;=%{}-]*")


MAX_EPOCH = 253_402_300_799  # 9999-12-31T23:59:59Z: the last second a timestamp can name


def parse_epoch(epoch: str) -> int:
    """SOURCE_DATE_EPOCH as whole seconds since 1970, at most MAX_EPOCH (UsageError otherwise)."""
    if not re.fullmatch(r"[0-9]{1,12}", epoch) or int(epoch) > MAX_EPOCH:
        raise UsageError(f"SOURCE_DATE_EPOCH {epoch[:40]!r} is not a number of seconds up to {MAX_EPOCH} (year 9999)",
                         hint="unset it, or set it to seconds since 1970 (date +%s)")
    return int(epoch)


def check_url(key: str, value: str, fields: tuple[str, ...] = (), where: str = "") -> str:
    """`value` as a download URL for setting `key` (UsageError naming the option otherwise). "" is allowed."""
    option = "--" + key.replace("_", "-")
    if not value:
        return value
    bad = next((c for c in value if not _URL_CHARS.fullmatch(c)), None)
    try:
        parts: urllib.parse.SplitResult | None = urllib.parse.urlsplit(value)
    except ValueError:
        parts = None
    try:
        port_ok = parts is None or parts.port is None or 0 < parts.port < 65536
    except ValueError:  # not a number, or out of range
        port_ok = False
    try:
        placeholders = [f for _lit, f, _spec, _conv in string.Formatter().parse(value) if f is not None]
    except ValueError:  # an unmatched brace
        placeholders = ["?"]
    problem = (
        f"contains {bad!r}" if bad is not None
        else "is not an http(s) URL" if parts is None or parts.scheme not in ("http", "https") or not parts.hostname
        else "has an invalid port" if not port_ok
        else f"uses the placeholder {{{placeholders[0]}}}" if any(f not in fields for f in placeholders)
        else ""
    )
    if problem:
        allowed = f" (placeholders: {', '.join('{' + f + '}' for f in fields)})" if fields else ""
        raise UsageError(f"source setting {key}={value!r}{' in ' + where if where else ''} {problem}",
                         hint=f"give {option} a plain http(s) URL{allowed}")
    return value



@dataclass(frozen=True)
class ImageSpec:
    """Everything that decides the content of one runtime image."""

    runtime: str
    version: str
    base: str
    sources: Sources
    cuda_version: str | None
    title: str
    description: str
    apt_packages: tuple[str, ...]
    wheels: tuple[str, ...]
    suite: str = ""  # the base's release (VERSION_CODENAME): picks the distribution package pins
    versions: dict[str, str] = field(default_factory=dict)
    cuda: dict[str, Any] = field(default_factory=dict)
    revision: str = ""
    created: str = ""
    oci: dict[str, str] = field(default_factory=dict)
    venv: str = ""  # the user's Python environment (a venv of the OS's python3), "" for none
    venv_wheels: tuple[str, ...] = ()  # what the venv holds: hash-pinned wheels of images/common/wheels.lock
    platform: Platform = field(default_factory=host_platform)  # the target: the recipe is resolved for it
    cuda_targets: str = "x86_64-linux"  # NVIDIA's targets directory for the platform (cuda = "nvidia")
    notes: tuple[str, ...] = ()  # what the platform changed in the sources (arch.resolve), for the user

    def pin(self, key: str) -> str:
        """A pinned version of images/<runtime>/image.toml, for this base's release (UsageError if none)."""
        if key not in self.versions:
            raise UsageError(f"images/{self.runtime}/image.toml pins no {key} for {self.suite or 'this base'}",
                             hint=f"add it under [versions.{self.suite or '<codename>'}], or choose another source")
        return self.versions[key]

    @property
    def aws_cli_version(self) -> str:
        if self.sources.aws_cli == "debian":
            return self.pin("aws_cli_debian").split("-")[0]
        return self.pin("aws_cli")

    @property
    def r_version(self) -> str:
        pinned = self.pin("r_distro" if self.sources.r == "distro" else "r_cran")
        m = re.match(r"\d+\.\d+\.\d+", pinned)
        return m.group(0) if m else pinned

    @property
    def cuda_full_version(self) -> str:
        return str(self.cuda.get("full", "")) if self.cuda_version else ""


def common() -> dict[str, Any]:
    """images/common/image.toml: the upstream base, the bootstrap settings and the OCI labels."""
    return _read_toml(data_dir("images") / "common" / "image.toml")


def load_spec(runtime: str, *, version: str, base: str, sources: Sources, cuda_version: str | None = "default",
              revision: str = "", created: str = "", suite: str | None = None,
              platform: Platform | None = None) -> ImageSpec:
    """Combine images/<runtime>/image.toml, common/*.toml and the options into an ImageSpec.

    `suite` is the base's release (None: the default bootstrap suite); `platform` the target (None: this
    machine's), for which the sources are resolved (`arch.resolve`)."""
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}", hint=f"choose one of: {', '.join(RUNTIMES)}")
    images = data_dir("images")
    table = _read_toml(images / runtime / "image.toml")
    shared = common()
    suite = suite if suite is not None else str(shared["bootstrap"]["suite"])
    target = platform or host_platform()
    cuda_table = _read_toml(images / "common" / "cuda.toml")
    per_arch = arch.resolve(sources, target, suite, cuda_table, wants_cuda=cuda_version not in ("none", "", None))
    sources = per_arch.sources
    cuda = _cuda(cuda_table, cuda_version, sources.cuda, suite)
    check_version(version)
    img = table["image"]
    all_versions = table.get("versions", {})
    versions = {k: str(v) for k, v in all_versions.items() if not isinstance(v, dict)}
    versions.update({k: str(v) for k, v in all_versions.get(suite, {}).items()})
    return ImageSpec(
        runtime=runtime, version=version, base=base, sources=sources, cuda_version=cuda.pop("version", None),
        title=img["title"], description=img["description"], apt_packages=tuple(img["apt_packages"]),
        wheels=tuple(img.get("wheels", ())), suite=suite, versions=versions, cuda=cuda,
        revision=revision, created=created, oci={k: str(v) for k, v in shared["oci"].items()},
        venv=str(img.get("venv", "")), venv_wheels=tuple(img.get("venv_wheels", ())),
        platform=target, cuda_targets=per_arch.cuda_targets, notes=per_arch.notes,
    )


def check_version(version: str) -> str:
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,127}", version):
        raise UsageError(f"image version {version!r} is not a valid tag", hint="use a semver such as 1.2.3")
    return version


def check_cuda_version(cuda_version: str | None) -> None:
    known = _read_toml(data_dir("images") / "common" / "cuda.toml").get("versions", {})
    if cuda_version not in ("none", "", None, "default", *known):
        raise UsageError(f"unsupported CUDA version {cuda_version!r}",
                         hint=f"choose one of {', '.join(known)} or 'none' (images/common/cuda.toml)")


def _cuda(table: dict[str, Any], cuda_version: str | None, source: str, suite: str) -> dict[str, Any]:
    """The cuda.toml entry of `cuda_version` (plus `version`) for `source` on `suite`; {} without CUDA."""
    if cuda_version in ("none", "", None):
        return {}
    if cuda_version == "default":
        cuda_version = str(table["default"])
    known = table.get("versions", {})
    if cuda_version not in known:
        raise UsageError(f"unsupported CUDA version {cuda_version!r}",
                         hint=f"choose one of {', '.join(known)} or 'none' (images/common/cuda.toml)")
    need = {"pypi": "wheel", "debian": "debian", "nvidia": "apt"}[source]

    def offers(entry: dict[str, Any]) -> bool:
        return need in entry and (need != "debian" or suite in entry["debian"])

    if not offers(known[cuda_version]):
        usable = [v for v, t in known.items() if offers(t)]
        where = f" on {suite}" if need == "debian" else ""
        raise UsageError(f"CUDA {cuda_version} is not available from the {source!r} source{where}",
                         hint=f"with cuda={source} choose --cuda-version {' or '.join(usable) or 'none'}")
    entry = dict(known[cuda_version])
    if need == "debian":
        entry["debian"] = entry["debian"][suite]
    return {**entry, "version": cuda_version}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise UsageError(f"{path} is missing") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: {exc}", hint="fix the TOML syntax") from exc
