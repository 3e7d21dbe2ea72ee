"""CLI for the CI gate: `ap-build scan`, `ap-build sbom`, `ap-build test` (thin layer over the library)."""

from __future__ import annotations

from pathlib import Path

import typer

from ap_build.errors import EXIT_FAILED
from ap_build.ui import err, out, print_json


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

    with err.status(f"structure-testing {image}"):
        res = run_structure_test(image, config)
    if as_json:
        print_json(res.to_dict())
    else:
        for r in res.to_dict()["results"]:
            mark = "[green]PASS[/]" if r["pass"] else "[red]FAIL[/]"
            out.print(f"{mark} {r['name']}")
            for e in r["errors"]:
                out.print(f"     {e}")
        verdict = "[green]passed[/]" if res.passed else "[red]failed[/]"
        out.print(f"structure tests {verdict}: {res.total - len(res.failures)}/{res.total} ({res.config})")
    if not res.passed:
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add `scan`, `sbom` and `test` as top-level commands."""
    app.command("test")(test_cmd)
