"""The recipe resolved for one target architecture (pure): which AWS CLI zip, which CUDA source and directory,
which wheel hashes.

What differs between linux/amd64 and linux/arm64 is data: the `{machine}` in the AWS CLI zip's URL
(`awscli-exe-linux-aarch64-<version>.zip`, verified with the same pinned key), the `{cuda_arch}` directory of
NVIDIA's apt repository (`sbsa` for arm64, where `images/common/cuda.toml` says NVIDIA ships it; elsewhere the
runtime wheel for the architecture), and the lines of `images/common/wheels.lock` marked for the architecture.
apt (Debian's packages, CRAN's R, the distribution's AWS CLI) picks the architecture by itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from ap_build.errors import UsageError
from ap_build.images.platforms import Platform

_MARKER = re.compile(r"""\s*;\s*platform_machine\s*==\s*["']([A-Za-z0-9_]+)["']\s*""")


@dataclass(frozen=True)
class Resolved:
    """A build's sources for one architecture, what the architecture changed, and its CUDA directories."""

    sources: Any  # spec.Sources, with `{machine}` and `{cuda_arch}` filled in
    notes: tuple[str, ...]  # what the architecture changed, for the user ("" for none)
    cuda_targets: str  # NVIDIA's targets directory (`x86_64-linux`, `sbsa-linux`)


def nvidia_arch(cuda: dict[str, Any], target: Platform) -> dict[str, Any]:
    """cuda.toml's `[nvidia.<arch>]` table (UsageError if the architecture has none)."""
    table = cuda.get("nvidia", {}).get(target.arch)
    if not isinstance(table, dict) or "dir" not in table or "targets" not in table:
        raise UsageError(f"images/common/cuda.toml has no [nvidia.{target.arch}] table",
                         hint="add its dir and targets (NVIDIA's repository layout)")
    return table


def nvidia_ships(table: dict[str, Any], suite: str) -> bool:
    """Whether NVIDIA's apt repository has this architecture for the base's release (no list: every release)."""
    suites = table.get("suites")
    return suites is None or suite in suites


def resolve(sources: Any, target: Platform, suite: str, cuda: dict[str, Any], *, wants_cuda: bool) -> Resolved:
    """`sources` as the build for `target` uses them (pure). `cuda` is images/common/cuda.toml."""
    table = nvidia_arch(cuda, target)
    notes: list[str] = []
    url = sources.aws_cli_url
    if sources.aws_cli == "zip" and "{machine}" not in url and target.machine != "x86_64":
        raise UsageError(f"aws_cli_url {url!r} has no {{machine}}, so it cannot name the {target.machine} zip",
                         hint="put {machine} where the architecture goes (awscli-exe-linux-{machine}-{version}.zip), "
                              "or --aws-cli debian")
    repo = sources.nvidia_repo
    cuda_source = sources.cuda
    if wants_cuda and cuda_source == "nvidia" and not nvidia_ships(table, suite):
        cuda_source = "pypi"
        notes.append(f"CUDA for {target.name} from NVIDIA's {target.machine} wheel: NVIDIA's apt repository has no "
                     f"{table['dir']} packages for {suite} (images/common/cuda.toml)")
    resolved = replace(sources, cuda=cuda_source, aws_cli_url=url.replace("{machine}", target.machine),
                       nvidia_repo=repo.replace("{cuda_arch}", str(table["dir"])))
    return Resolved(resolved, tuple(notes), str(table["targets"]))


def lock_lines(text: str, target: Platform) -> list[str]:
    """The lines of wheels.lock that apply to `target`, without their platform marker (pure): unmarked lines
    apply everywhere, `; platform_machine == "aarch64"` lines only there."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _MARKER.search(line)
        if m is None:
            out.append(line)
        elif m.group(1) == target.machine:
            out.append(line[: m.start()] + " " + line[m.end():])
    return out
