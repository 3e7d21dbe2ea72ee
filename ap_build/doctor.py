"""`ap-build doctor`: report the engine, the registry and the helper binaries, and how to fix each."""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.parse
from dataclasses import asdict, dataclass

import typer

from ap_build.errors import EXIT_ERROR, ApBuildError, ToolError, UsageError
from ap_build.platform import LOCAL_REGISTRY
from ap_build.tools import CST, TRIVY, Tool, install_hint, locate
from ap_build.ui import error, out, print_json, printable, styled


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _tool_version(path: str, args: list[str], pattern: str) -> tuple[bool, str]:
    try:
        proc = subprocess.run([path, *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{path}: {exc}"
    m = re.search(pattern, proc.stdout + proc.stderr)
    return proc.returncode == 0, f"{m.group(1) if m else '?'} ({path})"


def _pinned_tool(tool: Tool, args: list[str], pattern: str) -> Check:
    """A helper binary found exactly as `scan` and `test` find it (explicit variable, venv, PATH)."""
    try:
        path = locate(tool)
    except ToolError as exc:
        return Check(tool.name, False, exc.message, exc.hint or "")
    ok, detail = _tool_version(path, args, pattern)
    return Check(tool.name, ok, detail, install_hint(tool))


def registry_url(registry: str) -> str:
    """`host:port` or an http(s) URL -> the registry's base URL (UsageError if it is neither)."""
    url = registry if registry.startswith(("http://", "https://")) else f"http://{registry}"
    try:
        parts = urllib.parse.urlsplit(url)
        valid = bool(parts.hostname) and (parts.port is None or parts.port > 0)  # .port raises on a bad port
    except ValueError:
        valid = False
    if not valid or any(c.isspace() or not c.isprintable() for c in registry):
        raise UsageError(f"--registry {registry!r} is not HOST:PORT or an http(s) URL",
                         hint=f"e.g. --registry {LOCAL_REGISTRY} or --registry https://registry.example")
    return url.rstrip("/")


def run_checks(registry: str = LOCAL_REGISTRY) -> list[Check]:
    """Probe everything ap-build relies on (side effects: socket, HTTP, subprocess)."""
    import http.client
    import urllib.request  # only when needed, like the Docker SDK: every command's start-up imports this module

    from ap_build.engine import ENGINE_HINT, Engine

    url = registry_url(registry)
    checks: list[Check] = []
    try:
        info = Engine.connect(timeout=10).info()
        checks.append(Check("engine", True, f"{info.name} {info.version} (API {info.api_version}) at {info.host}"))
    except ApBuildError as exc:
        checks.append(Check("engine", False, exc.message, exc.hint or ENGINE_HINT))
    try:
        urllib.request.urlopen(f"{url}/v2/", timeout=3).close()
        checks.append(Check("registry", True, f"{registry} answers the v2 API", required=False))
    except (OSError, ValueError, http.client.HTTPException) as exc:  # BadStatusLine: not HTTP at that port
        reason = f"no HTTP answer ({type(exc).__name__})" if isinstance(exc, http.client.HTTPException) else exc
        checks.append(Check("registry", False, f"{registry}: {reason}", "scripts/setup.sh starts one on "
                            f"{LOCAL_REGISTRY}; or pass --registry", required=False))
    checks.append(_pinned_tool(TRIVY, ["--version"], r"Version:\s*(\S+)"))
    checks.append(_pinned_tool(CST, ["version"], r"(v?\d+\.\d+\.\d+\S*)"))
    mmdebstrap = shutil.which("mmdebstrap")
    ok, detail = _tool_version(mmdebstrap, ["--version"], r"mmdebstrap\s+(\S+)") if mmdebstrap \
        else (False, "not found on PATH")
    checks.append(Check("mmdebstrap", ok, detail, "apt-get install mmdebstrap (only for bootstrapped bases)",
                        required=False))
    return checks + platform_checks()


def platform_checks() -> list[Check]:
    """Whether each image platform (`image build --platform`) can be built here: native, emulated (binfmt_misc
    qemu handler) or not, with the commands that enable it. Not required: only the platforms asked for are."""
    from ap_build.images.emulation import support
    from ap_build.images.platforms import AMD64, ARM64

    return [Check(f"platform {s.platform.name}", s.ok, s.detail, s.fix, required=False)
            for s in (support(p) for p in (AMD64, ARM64))]


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(
        registry: str = typer.Option(LOCAL_REGISTRY, help="Registry to probe (host:port or URL)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Check the engine, registry and helper tools; say how to fix what is missing."""
        checks = run_checks(registry)
        if as_json:
            print_json([asdict(c) for c in checks])
        else:
            for c in checks:
                mark = ("ok  ", "green") if c.ok else (("FAIL", "red") if c.required else ("warn", "yellow"))
                out.print(styled(mark, f" {c.name:<26} {printable(c.detail)}"))
                if not c.ok and c.fix:
                    out.print(styled("     ", ("fix:", "dim"), f" {printable(c.fix)}"))
        missing = [c.name for c in checks if c.required and not c.ok]
        if missing:
            error(f"doctor: required parts are missing: {', '.join(missing)}",
                  "fix them as shown (`fix:`), then re-run ap-build doctor")
            raise typer.Exit(EXIT_ERROR)
