"""CLI for the CI gate: `ap-build scan`, `ap-build sbom`, `ap-build test` (thin layer over the library)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from ap_build.errors import EXIT_FAILED, UsageError
from ap_build.ui import err, info, out, print_json, printable, status, styled

if TYPE_CHECKING:
    from ap_build.scan.gate import ScanResult

FORMATS = ("table", "json", "sarif", "markdown")
MAX_TIMEOUT = 7 * 24 * 3600


def _write_report(path: Path, text: str | bytes) -> None:
    """Write a report atomically through the safe writer (confined to its folder, never half-written)."""
    from ap_build import fsio

    fsio.write_output(path, text)


def _render(fmt: str, result: ScanResult, tool_version: str) -> str:
    import json

    from ap_build.scan import report

    if fmt == "json":
        doc = report.to_json(result.verdict, result.artifact)
        if result.comparison is not None:
            doc["compare"] = result.comparison.to_dict()
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if fmt == "sarif":
        return json.dumps(report.to_sarif(result.verdict, result.artifact, tool_version=tool_version), indent=2) + "\n"
    if fmt == "markdown":
        text = report.to_markdown(result.verdict, result.artifact)
        if result.comparison is not None:
            from ap_build.scan.compare import to_markdown

            text += "\n" + to_markdown(result.comparison)
        return text
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    report.render_table(result.verdict, result.artifact, Console(file=buf, highlight=False, markup=False),
                        _footer(result))
    return buf.getvalue()


def _footer(result: ScanResult) -> tuple[str, ...]:
    """Lines the table prints before its verdict line: `--compare`'s summary."""
    if result.comparison is None:
        return ()
    from ap_build.scan.compare import to_lines

    return tuple(to_lines(result.comparison))


def _parse_reports(values: list[str]) -> list[tuple[str, Path]]:
    pairs = []
    for v in values:
        fmt, sep, file = v.partition("=")
        if not sep or fmt not in FORMATS or not file:
            raise UsageError(
                f"--report {v!r}: expected FORMAT=FILE with FORMAT one of {', '.join(FORMATS)}",
                hint="e.g. --report sarif=trivy.sarif --report markdown=summary.md",
            )
        pairs.append((fmt, Path(file)))
    return pairs


def scan_cmd(
    image: str = typer.Argument(..., help="Engine image reference, or a `docker save`/OCI archive path."),
    severity: str = typer.Option("HIGH,CRITICAL", "--severity", help="Severities that block (comma list)."),
    include_unfixed: bool = typer.Option(False, "--include-unfixed", help="Also block findings with no fix."),
    vuln_type: str = typer.Option(
        "all",
        "--vuln-type",
        help="Packages the gate acts on: os, library or all "
        "(user images: library; base images: all). Everything is still reported.",
    ),
    skip_dir: list[str] = typer.Option([], "--skip-dir", help="Directory in the image Trivy skips (repeatable)."),
    ignore_file: list[Path] = typer.Option(
        [],
        "--ignore-file",
        help="Ignore file(s) (.trivyignore or .trivyignore.yaml); default: those in the current directory.",
    ),
    base_ignores: bool = typer.Option(
        True, "--base-ignores/--no-base-ignores", help="Apply the ignore list the base image carries inside the image."
    ),
    warn_expiry_days: int = typer.Option(
        14, "--warn-expiry-days", min=0, help="Warn about ignores expiring this soon."
    ),
    secrets: bool = typer.Option(True, "--secrets/--no-secrets", help="Secret scanning (a secret blocks)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, sarif or markdown."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the report to FILE (atomic)."),
    report_to: list[str] = typer.Option([], "--report", help="Also write FORMAT=FILE (repeatable), same scan."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Trivy cache dir (holds db/trivy.db)."),
    skip_db_update: bool = typer.Option(False, "--skip-db-update", help="Use the cached DB as is (offline)."),
    db_repository: str | None = typer.Option(
        None, "--db-repository", help="DB mirror (default mirror.gcr.io/aquasec/trivy-db:2)."
    ),
    trivy: str | None = typer.Option(None, "--trivy", help="Trivy binary (default: $AP_BUILD_TRIVY, the pinned one)."),
    timeout: int = typer.Option(900, "--timeout", min=1, max=MAX_TIMEOUT, help="Trivy timeout, seconds (<= a week)."),
    vex: list[Path] = typer.Option(
        [], "--vex", help="OpenVEX/CycloneDX VEX document Trivy applies (repeatable); the report names what it settled."
    ),
    compare: str | None = typer.Option(
        None, "--compare", metavar="OTHER", help="Also scan OTHER: findings fixed/introduced, packages changed."
    ),
) -> None:
    """Scan IMAGE with Trivy and gate it: exit 0 passed, 1 blocking findings, 2 could not scan.

    One Trivy run collects everything; ap-build marks each finding blocking, ignored or informational.
    Default gate: HIGH/CRITICAL with a fix, plus any secret.
    """
    from ap_build.scan.gate import scan
    from ap_build.scan.policy import VULN_TYPES, Policy, parse_severities
    from ap_build.scan.trivy import TrivyOptions

    fmt = "json" if as_json else fmt
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if vuln_type not in VULN_TYPES:
        raise UsageError(f"--vuln-type {vuln_type!r} is not one of {', '.join(VULN_TYPES)}")
    try:
        severities = parse_severities(severity)
    except ValueError as exc:
        raise UsageError(f"--severity: {exc}") from exc
    extra = _parse_reports(report_to)
    policy = Policy(
        severities=severities, include_unfixed=include_unfixed, vuln_type=vuln_type, warn_expiry_days=warn_expiry_days
    )
    opts = TrivyOptions(
        binary=trivy,
        cache_dir=cache_dir,
        skip_db_update=skip_db_update,
        db_repository=db_repository,
        skip_dirs=tuple(skip_dir),
        secrets=secrets,
        timeout=timeout,
        vex=tuple(vex),
    )
    with status(f"scanning {image} with Trivy"):
        kwargs = {"ignore_files": list(ignore_file) or None, "base_ignores": base_ignores}
        if compare:
            from ap_build.scan.gate import scan_compare

            result = scan_compare(image, compare, policy, opts, **kwargs)
        else:
            result = scan(image, policy, opts, **kwargs)
    version = result.artifact.get("trivy_version", "")
    for extra_fmt, path in extra:
        _write_report(path, _render(extra_fmt, result, version))
    if output:
        _write_report(output, _render(fmt, result, version))
    elif fmt == "table":  # straight to the terminal (or log), sized for it
        from ap_build.scan import report

        report.render_table(result.verdict, result.artifact, out, _footer(result))
    else:
        sys.stdout.write(_render(fmt, result, version))
        sys.stdout.flush()
    if output or fmt != "table":
        c = result.verdict.counts()
        state = ("passed", "green") if result.verdict.passed else ("failed", "red")
        err.print(styled("scan ", state, f" {printable(image)}: {c['blocking']} blocking, {c['ignored']} ignored, "
                         f"{c['informational']} informational"))
    if not result.verdict.passed:
        raise typer.Exit(EXIT_FAILED)


def sbom_cmd(
    image: str = typer.Argument(..., help="Engine image reference, or a `docker save`/OCI archive path."),
    fmt: str = typer.Option("cyclonedx", "--format", "-f", help="cyclonedx (JSON), spdx (SPDX JSON) or spdx-tv."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to FILE (atomic); default stdout."),
    skip_dir: list[str] = typer.Option([], "--skip-dir", help="Directory in the image to skip (repeatable)."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Trivy cache dir."),
    trivy: str | None = typer.Option(None, "--trivy", help="Trivy binary (default: $AP_BUILD_TRIVY, the pinned one)."),
    timeout: int = typer.Option(900, "--timeout", min=1, max=MAX_TIMEOUT, help="Trivy timeout, seconds (<= a week)."),
) -> None:
    """Write IMAGE's software bill of materials (needs no vulnerability DB). Exit 0 written, 2 could not."""
    import tempfile

    from ap_build.scan.gate import sbom
    from ap_build.scan.trivy import TrivyOptions

    opts = TrivyOptions(binary=trivy, cache_dir=cache_dir, skip_dirs=tuple(skip_dir), timeout=timeout)
    with status(f"building the {fmt} SBOM of {image}"), tempfile.TemporaryDirectory(prefix="ap-build-sbom-") as tmp:
        target = Path(tmp) / "sbom"
        sbom(image, fmt, target, opts)
        data = target.read_bytes()
    if output:
        _write_report(output, data)
        info(f"wrote {output}")
        return
    text = data.decode("utf-8", "replace")
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def test_cmd(
    image: str = typer.Argument(..., help="Engine image reference to test."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="container-structure-test config (default: the user-image contract)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print ap-build's JSON result on stdout."),
) -> None:
    """Run container-structure-test on IMAGE (default: user 1000, workdir /opt/analyticalplatform).

    Exit 0 passed, 1 a test failed, 2 could not run (no engine, no tool, bad config, no image).
    """
    from ap_build.scan.structure import run_structure_test

    with status(f"structure-testing {image}"):
        res = run_structure_test(image, config)
    if as_json:
        print_json(res.to_dict())
    else:
        for r in res.to_dict()["results"]:
            mark = ("PASS", "green") if r["pass"] else ("FAIL", "red")
            out.print(styled(mark, " ", printable(r["name"])))
            for e in r["errors"]:
                out.print(Text(f"     {printable(e)}"))
        verdict = ("passed", "green") if res.passed else ("failed", "red")
        out.print(styled("structure tests ", verdict,
                         f": {res.total - len(res.failures)}/{res.total} ({printable(res.config)})"))
    if not res.passed:
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add `scan`, `sbom` and `test` as top-level commands."""
    app.command("scan")(scan_cmd)
    app.command("sbom")(sbom_cmd)
    app.command("test")(test_cmd)
