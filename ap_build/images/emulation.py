"""Whether this machine can build (and run) images of a platform: natively, under qemu's user-mode emulation
registered with binfmt_misc, or not, and the commands that enable it.

A foreign architecture's binaries run through the kernel's binfmt_misc handler `qemu-<machine>` (Debian's
qemu-user-static + binfmt-support register it). Containers need its `F` flag (the interpreter is opened when
registered, so it works inside any root filesystem); mmdebstrap needs `arch-test` to bootstrap such a base.
Parsing and the fix are pure; `support` reads /proc and PATH.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ap_build.errors import ToolError
from ap_build.images.platforms import Platform, host_platform

BINFMT = Path("/proc/sys/fs/binfmt_misc")


@dataclass(frozen=True)
class Support:
    """How `platform` can be built here: `native`, `emulated` or `none` (with why and the fix)."""

    platform: Platform
    how: str  # native | emulated | none
    detail: str
    fix: str = ""
    interpreter: str = ""

    @property
    def ok(self) -> bool:
        return self.how != "none"


@dataclass(frozen=True)
class Handler:
    """One binfmt_misc entry, as /proc/sys/fs/binfmt_misc/<name> shows it."""

    enabled: bool
    interpreter: str
    flags: str


def parse_handler(text: str) -> Handler:
    """/proc/sys/fs/binfmt_misc/qemu-aarch64's text -> Handler (pure)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    fields = dict(ln.split(" ", 1) for ln in lines[1:] if " " in ln)
    return Handler(enabled=bool(lines) and lines[0] == "enabled", interpreter=fields.get("interpreter", ""),
                   flags=fields.get("flags:", ""))


def fix_commands(target: Platform) -> str:
    """The commands (as root) that make `target` buildable on a Debian host (pure)."""
    name = f"qemu-{target.machine}"
    return ("bash scripts/setup.sh, or: apt-get install -y qemu-user-static binfmt-support arch-test && "
            f"(test -e {BINFMT}/register || mount -t binfmt_misc binfmt_misc {BINFMT}) && "
            f"(test -e /var/lib/binfmts/{name} || update-binfmts --import {name}) && update-binfmts --enable {name}")


def judge(target: Platform, host: Platform, handler: Handler | None, *, mounted: bool, arch_test: bool,
          interpreter_exists: bool) -> Support:
    """How `target` can be built on `host`, from what the machine shows (pure)."""
    if target == host:
        return Support(target, "native", f"native ({host.machine})")
    fix = fix_commands(target)
    name = f"qemu-{target.machine}"
    if not mounted:
        return Support(target, "none", f"no emulation: binfmt_misc is not mounted at {BINFMT}", fix)
    if handler is None:
        return Support(target, "none", f"no emulation: no binfmt_misc handler {name} (qemu-user-static)", fix)
    if not handler.enabled:
        return Support(target, "none", f"no emulation: the binfmt_misc handler {name} is disabled", fix)
    if not interpreter_exists:
        return Support(target, "none", f"no emulation: {name}'s interpreter {handler.interpreter} is missing", fix)
    if "F" not in handler.flags:
        return Support(target, "none", f"no emulation in containers: {name} lacks the F (fix-binary) flag",
                       f"re-register it with the F flag: {fix}", handler.interpreter)
    if not arch_test:
        return Support(target, "none", "emulated, but arch-test is missing: mmdebstrap cannot bootstrap a "
                       f"{target.arch} base", "apt-get install -y arch-test", handler.interpreter)
    return Support(target, "emulated", f"emulated: binfmt_misc {name} -> {handler.interpreter} "
                   f"(flags {handler.flags})", interpreter=handler.interpreter)


def support(target: Platform, host: Platform | None = None, binfmt: Path | None = None) -> Support:
    """How `target` can be built on this machine (reads binfmt_misc, or $AP_BUILD_BINFMT, and PATH)."""
    host = host or host_platform()
    binfmt = binfmt or Path(os.environ.get("AP_BUILD_BINFMT") or BINFMT)
    entry = binfmt / f"qemu-{target.machine}"
    try:
        handler: Handler | None = parse_handler(entry.read_text())
    except OSError:
        handler = None
    return judge(target, host, handler, mounted=(binfmt / "register").exists() or (binfmt / "status").exists(),
                 arch_test=shutil.which("arch-test") is not None,
                 interpreter_exists=bool(handler and handler.interpreter and Path(handler.interpreter).exists()))


def require(platforms: tuple[Platform, ...], host: Platform | None = None) -> dict[Platform, Support]:
    """Each platform's support; ToolError (exit 2, the fix as hint) for the first that cannot be built here."""
    found = {p: support(p, host) for p in platforms}
    for p, s in found.items():
        if not s.ok:
            raise ToolError(f"cannot build {p.name} on this {(host or host_platform()).name} machine: {s.detail}",
                            hint=s.fix)
    return found
