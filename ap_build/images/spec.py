"""What to build: a runtime, its versions and the sources every download comes from (pure, data-driven).

The data lives in `images/`: `sources.toml` (named source profiles), `<runtime>/image.toml`
(packages and versions), `common/cuda.toml` (CUDA versions per source), `common/wheels.lock`
(hash-pinned wheels). This module turns those files plus CLI options into one frozen `ImageSpec`.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ap_build.errors import UsageError
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
    """Where each download comes from. Defaults are the upstream, public sources."""

    name: str = "upstream"
    apt_mirror: str = ""
    pypi_index: str = "https://pypi.org/simple"
    ca_bundle: str = ""
    aws_cli: str = "zip"
    aws_cli_url: str = "https://awscli.amazonaws.com/awscli-exe-linux-x86_64-{version}.zip"
    aws_cli_key: str = "common/keys/aws-cli.asc"
    aws_cli_fingerprint: str = "FB5DB77FD5C118B80511ADA8A6310ACC4672475C"
    cuda: str = "nvidia"
    nvidia_repo: str = "https://developer.download.nvidia.com/compute/cuda/repos/{distro}/x86_64"
    nvidia_key_fingerprint: str = "EB693B3035CD5710E231E123A4B469963BF863CC"
    r: str = "cran"
    cran_repo: str = "https://cloud.r-project.org/bin/linux/{distro_family}"
    cran_key_url: str = "https://cloud.r-project.org/bin/linux/ubuntu/marutter_pubkey.asc"
    cran_key_fingerprint: str = "E298A3A825C0D65DFD57CBB651716619E084DAB9"

    def uses_loopback(self) -> bool:
        """True when a download URL points at this machine (the build then needs the host network)."""
        urls = (self.apt_mirror, self.pypi_index, self.aws_cli_url, self.nvidia_repo, self.cran_repo, self.cran_key_url)
        return any(re.search(r"//(127\.\d+\.\d+\.\d+|localhost|\[::1\])", u) for u in urls)


def load_sources(name_or_file: str = "upstream", overrides: dict[str, str] | None = None,
                 environ: dict[str, str] | None = None) -> Sources:
    """Read a named profile from images/sources.toml (or a TOML file of the same shape) and apply overrides."""
    path = Path(name_or_file)
    if path.suffix == ".toml":
        if not path.is_file():
            raise UsageError(f"sources file {path} does not exist", hint="pass a profile name or a .toml file")
        table = _read_toml(path)
        profiles = table if all(isinstance(v, dict) for v in table.values()) and table else {"file": table}
        profile = next(iter(profiles.values()))
        name = str(path)
    else:
        profiles = _read_toml(data_dir("images") / "sources.toml")
        if name_or_file not in profiles:
            raise UsageError(f"unknown sources profile {name_or_file!r}",
                             hint=f"choose one of {', '.join(profiles)} or pass a .toml file")
        # every profile inherits unspecified keys from `upstream`
        profile = {**profiles.get("upstream", {}), **profiles[name_or_file]}
        name = name_or_file
    values: dict[str, Any] = {**profile, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    known = set(Sources.__dataclass_fields__) - {"name"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"unknown source setting(s) {', '.join(unknown)} in {name}",
                         hint=f"known settings: {', '.join(sorted(known))}")
    resolved = {k: expand(str(v), environ) for k, v in values.items()}
    for key, choices in SOURCE_CHOICES.items():
        if key in resolved and resolved[key] not in choices:
            raise UsageError(f"source setting {key}={resolved[key]!r} in {name} is not one of {', '.join(choices)}")
    return Sources(name=name, **resolved)


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
    versions: dict[str, str] = field(default_factory=dict)
    cuda: dict[str, Any] = field(default_factory=dict)
    revision: str = ""
    created: str = ""
    source_url: str = "https://github.com/ministryofjustice/analytical-platform-airflow-base-images"

    @property
    def aws_cli_version(self) -> str:
        if self.sources.aws_cli == "debian":
            return self.versions["aws_cli_debian"].split("-")[0]
        return self.versions["aws_cli"]

    @property
    def r_version(self) -> str:
        pinned = self.versions["r_distro" if self.sources.r == "distro" else "r_cran"]
        m = re.match(r"\d+\.\d+\.\d+", pinned)
        return m.group(0) if m else pinned

    @property
    def cuda_full_version(self) -> str:
        return str(self.cuda.get("full", "")) if self.cuda_version else ""


def load_spec(runtime: str, *, version: str, base: str, sources: Sources,
              cuda_version: str | None = "default", revision: str = "", created: str = "") -> ImageSpec:
    """Combine images/<runtime>/image.toml, common/cuda.toml and the options into an ImageSpec."""
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}", hint=f"choose one of: {', '.join(RUNTIMES)}")
    images = data_dir("images")
    table = _read_toml(images / runtime / "image.toml")
    cuda_table = _read_toml(images / "common" / "cuda.toml")
    cuda: dict[str, Any] = {}
    if cuda_version in ("none", "", None):
        cuda_version = None
    else:
        if cuda_version == "default":
            cuda_version = str(cuda_table["default"])
        known = cuda_table.get("versions", {})
        if cuda_version not in known:
            raise UsageError(f"unsupported CUDA version {cuda_version!r}",
                             hint=f"choose one of {', '.join(known)} or 'none' (images/common/cuda.toml)")
        cuda = dict(known[cuda_version])
        need = {"pypi": "wheel", "debian": "debian", "nvidia": "apt"}[sources.cuda]
        if need not in cuda:
            usable = [v for v, t in known.items() if need in t]
            raise UsageError(f"CUDA {cuda_version} is not available from the {sources.cuda!r} source",
                             hint=f"with cuda={sources.cuda} choose --cuda-version {' or '.join(usable)}")
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,127}", version):
        raise UsageError(f"image version {version!r} is not a valid tag", hint="use a semver such as 1.2.3")
    img = table["image"]
    return ImageSpec(
        runtime=runtime, version=version, base=base, sources=sources, cuda_version=cuda_version,
        title=img["title"], description=img["description"], apt_packages=tuple(img["apt_packages"]),
        wheels=tuple(img.get("wheels", ())), versions={k: str(v) for k, v in table["versions"].items()},
        cuda=cuda, revision=revision, created=created,
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise UsageError(f"{path} is missing") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: {exc}", hint="fix the TOML syntax") from exc
