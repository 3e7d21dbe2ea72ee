"""Run the real Trivy binary: locate it, build the command line (pure), run ONE scan, map failures.

Trivy runs in an empty temporary working directory so it never loads a `.trivyignore` by itself
(ap-build applies ignores after the scan, so it can report them). Every failure is a ToolError
(exit 2): the gate fails closed.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ap_build.errors import ToolError, UsageError
from ap_build.scan.inputs import InputError, load_json, read_regular
from ap_build.tools import TRIVY, install_hint, locate

DEFAULT_DB_REPOSITORY = "mirror.gcr.io/aquasec/trivy-db:2"
MAX_REPORT_BYTES = 1024 * 1024 * 1024  # a report of every package of a huge image is ~10 MB


@dataclass(frozen=True)
class TrivyOptions:
    """Flags shared by scan and sbom runs."""

    binary: str | None = None
    cache_dir: Path | None = None
    skip_db_update: bool = False
    db_repository: str | None = None
    skip_dirs: tuple[str, ...] = ()
    secrets: bool = True
    timeout: int = 900
    extra_env: dict[str, str] = field(default_factory=dict)
    vex: tuple[Path, ...] = ()  # VEX documents (OpenVEX, CycloneDX, CSAF) Trivy applies itself
    list_packages: bool = False  # the package inventory too (`scan --compare` diffs it)

    def __post_init__(self) -> None:
        # Trivy runs in an empty temporary directory (so it loads no .trivyignore): make paths absolute
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir).resolve())
        object.__setattr__(self, "vex", tuple(Path(v).resolve() for v in self.vex))


def find_trivy(explicit: str | None = None) -> str:
    """`--trivy PATH`, then $AP_BUILD_TRIVY, then the venv's pinned binary, then PATH."""
    return locate(TRIVY, explicit)


def default_cache_dir() -> Path:
    """Trivy's own default cache dir (used only in messages): $TRIVY_CACHE_DIR or ~/.cache/trivy."""
    if os.environ.get("TRIVY_CACHE_DIR"):
        return Path(os.environ["TRIVY_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trivy"


def common_flags(opts: TrivyOptions) -> list[str]:
    flags = ["--skip-version-check", "--disable-telemetry", "--quiet", "--timeout", f"{opts.timeout}s"]
    if opts.cache_dir:
        flags += ["--cache-dir", str(opts.cache_dir)]
    return flags


@dataclass(frozen=True)
class Source:
    """What Trivy scans: an image archive (`--input`), or an engine image read through the Docker API."""

    archive: Path | None = None
    image: str | None = None
    docker_host: str | None = None

    def args(self) -> list[str]:
        if self.archive is not None:
            return ["--input", str(self.archive)]
        assert self.image
        # --image-src docker: only the engine, never a registry pull (no network, no surprise image).
        args = [self.image, "--image-src", "docker"]
        return [*args, "--docker-host", self.docker_host] if self.docker_host else args

    @property
    def label(self) -> str:
        return str(self.archive) if self.archive is not None else str(self.image)


def scan_command(trivy: str, source: Source, opts: TrivyOptions, output: Path) -> list[str]:
    """The ONE Trivy run behind `ap-build scan`: every finding, unfiltered, as JSON (pure).

    `--list-all-pkgs=false` (Trivy's JSON lists every package by default): the gate reads findings
    only (the package inventory is `ap-build sbom`'s job); the inventory is most of the report's bytes
    (2.5 MB against 0.3 MB for the Python runtime base), which ap-build would otherwise parse.
    """
    scanners = "vuln,secret" if opts.secrets else "vuln"
    cmd = [
        trivy,
        "image",
        *source.args(),
        "--format",
        "json",
        "--output",
        str(output),
        "--scanners",
        scanners,
        "--pkg-types",
        "os,library",
        f"--list-all-pkgs={'true' if opts.list_packages else 'false'}",
        "--severity",
        "UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL",
        *common_flags(opts),
    ]
    if opts.skip_db_update:
        cmd.append("--skip-db-update")
    if opts.db_repository:
        cmd += ["--db-repository", opts.db_repository]
    for d in opts.skip_dirs:
        cmd += ["--skip-dirs", d]
    for v in opts.vex:  # Trivy applies the statements; --show-suppressed keeps what they settled in the report
        cmd += ["--vex", str(v)]
    if opts.vex:
        cmd.append("--show-suppressed")
    return cmd


def sbom_command(trivy: str, source: Source, fmt: str, opts: TrivyOptions, output: Path) -> list[str]:
    """`trivy image --format cyclonedx|spdx-json` (no vulnerability DB needed) (pure)."""
    cmd = [trivy, "image", *source.args(), "--format", fmt, "--output", str(output), *common_flags(opts)]
    for d in opts.skip_dirs:
        cmd += ["--skip-dirs", d]
    return cmd


def explain_failure(stderr: str, opts: TrivyOptions) -> ToolError:
    """Turn Trivy's fatal error into one line + exactly what to do (pure)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    fatal = next((ln for ln in lines if "FATAL" in ln or "ERROR" in ln), lines[-1] if lines else "no output")
    detail = fatal.split("Fatal error", 1)[-1].strip(" \t:") if "Fatal error" in fatal else fatal
    causes = [ln.lstrip("* ").strip() for ln in lines if ln.startswith("*")]  # Go multierror details
    if causes:
        detail = f"{detail}: {'; '.join(causes)}"
    cache = opts.cache_dir or default_cache_dir()
    repo = opts.db_repository or DEFAULT_DB_REPOSITORY
    offline_fix = (
        f"on a machine with network access run `trivy image --download-db-only --cache-dir DIR` "
        f"(or `oras pull {repo}` and unpack db.tar.gz), copy DIR/db/ to {cache}/db/, then re-run with "
        f"--cache-dir {cache} --skip-db-update; or pass --db-repository to a reachable mirror of "
        f"{DEFAULT_DB_REPOSITORY}"
    )
    if "--skip-db-update cannot be specified on the first run" in stderr:
        return ToolError(
            f"no Trivy vulnerability DB in {cache}/db and --skip-db-update forbids downloading it",
            hint=f"drop --skip-db-update to download it from {repo}, or: {offline_fix}",
        )
    if "failed to download vulnerability DB" in stderr or "OCI repository error" in stderr:
        return ToolError(
            f"the Trivy vulnerability DB is missing or out of date in {cache}/db and could not be "
            f"downloaded from {repo} ({_short(detail)})",
            hint=offline_fix,
        )
    if "DB error" in stderr or "invalid database" in stderr or "checksum" in stderr or "metadata" in stderr.lower():
        return ToolError(
            f"the Trivy vulnerability DB in {cache}/db is unreadable ({_short(detail)})",
            hint=f"delete {cache}/db and re-run with network access to download it again, or: {offline_fix}",
        )
    return ToolError(
        f"Trivy failed: {_short(detail)}",
        hint="re-run with AP_BUILD_DEBUG=1, or run the trivy "
        "command by hand; the gate does not pass when the scan cannot run",
    )


def _short(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_trivy(cmd: list[str], opts: TrivyOptions) -> subprocess.CompletedProcess[str]:
    """Run Trivy in an empty temporary cwd (so it loads no .trivyignore); ToolError on any failure."""
    env = {**os.environ, **opts.extra_env}
    env.pop("TRIVY_IGNOREFILE", None)
    with tempfile.TemporaryDirectory(prefix="ap-build-trivy-cwd-") as cwd:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace", cwd=cwd,
                                  env=env, timeout=opts.timeout + 60)
        except subprocess.TimeoutExpired as exc:
            raise ToolError(f"Trivy did not finish within {opts.timeout}s", hint="raise --timeout") from exc
        except OSError as exc:
            raise ToolError(f"cannot run {cmd[0]}: {exc}", hint=install_hint(TRIVY)) from exc
    if proc.returncode != 0:
        raise explain_failure(proc.stderr, opts)
    return proc


def scan_source(source: Source, opts: TrivyOptions) -> dict[str, Any]:
    """Scan one image; Trivy's JSON report (SchemaVersion 2)."""
    trivy = find_trivy(opts.binary)
    with tempfile.TemporaryDirectory(prefix="ap-build-trivy-") as tmp:
        out = Path(tmp) / "report.json"
        run_trivy(scan_command(trivy, source, opts, out), opts)
        try:
            report = load_json(read_regular(out, MAX_REPORT_BYTES))
        except (OSError, InputError) as exc:
            raise ToolError(
                f"Trivy wrote no readable JSON report ({exc})",
                hint="the gate does not pass without a report; re-run with AP_BUILD_DEBUG=1",
            ) from exc
    if not isinstance(report, dict) or report.get("SchemaVersion") != 2:
        raise ToolError(
            f"unexpected Trivy report schema {report.get('SchemaVersion') if isinstance(report, dict) else '?'}"
            " (ap-build reads SchemaVersion 2)",
            hint=install_hint(TRIVY),
        )
    return report


SBOM_FORMATS = {"cyclonedx": "cyclonedx", "spdx": "spdx-json", "spdx-json": "spdx-json", "spdx-tv": "spdx"}


def sbom_source(source: Source, fmt: str, opts: TrivyOptions, output: Path) -> None:
    """Write the SBOM of `source` to `output` (atomically)."""
    if fmt not in SBOM_FORMATS:
        raise UsageError(f"unknown SBOM format {fmt!r}", hint=f"use one of {', '.join(SBOM_FORMATS)}")
    trivy = find_trivy(opts.binary)
    output = output.resolve()
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{output}: cannot create its directory ({exc.strerror or exc})") from exc
    tmp = output.with_name(f".{output.name}.part")
    try:
        run_trivy(sbom_command(trivy, source, SBOM_FORMATS[fmt], opts, tmp), opts)
        if not tmp.is_file():
            raise ToolError("Trivy wrote no SBOM", hint="re-run with AP_BUILD_DEBUG=1")
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
