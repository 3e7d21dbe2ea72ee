"""CLI for `ap-build exceptions check|export` (thin layer over ap_build.scan.exceptions)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import typer

from ap_build.errors import EXIT_FAILED, UsageError
from ap_build.ui import info, note, out, print_json, printable, status

app = typer.Typer(
    name="exceptions",
    help="The repository's vulnerability exceptions (ignore files): check their hygiene, export them.",
    no_args_is_help=True,
)

IGNORE_FILE_HELP = "Ignore file(s) (.trivyignore, .trivyignore.yaml, .grype.yaml); default: those in the current dir."


@app.command("check")
def check_cmd(
    ignore_file: list[Path] = typer.Option([], "--ignore-file", help=IGNORE_FILE_HELP),
    base: str | None = typer.Option(
        None, "--base", help="The base image's list: an ignore file, or an engine image carrying it in its label."
    ),
    require_reason: bool = typer.Option(False, "--require-reason", help="Fail when an exception gives no reason."),
    max_expiry_days: int | None = typer.Option(
        None, "--max-expiry-days", min=0, help="Fail when an exception has no expiry or expires later than N days."
    ),
    warn_expiry_days: int = typer.Option(14, "--warn-expiry-days", min=0, help="Warn about exceptions expiring soon."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check the exceptions without an image: malformed, expired, expiring, duplicates of the base's.

    Exit 0 passed, 1 broken (malformed or expired entries, or a --require-reason / --max-expiry-days
    violation), 2 could not run (an unreadable file).
    """
    from ap_build.scan.exceptions import check, gather

    ex = gather(list(ignore_file) or None, Path.cwd(), base)
    today = dt.datetime.now(dt.timezone.utc).date()  # noqa: UP017
    passed, found = check(ex, today=today, warn_expiry_days=warn_expiry_days, require_reason=require_reason,
                          max_expiry_days=max_expiry_days)
    if as_json:
        print_json({
            "schema_version": 1, "passed": passed, "sources": ex.sources, "entries": len(ex.entries),
            "base_entries": len(ex.base),
            "problems": [{"source": p.source, "line": p.line, "message": p.message} for p in ex.problems],
            "findings": [v.to_dict() for v in found],
            "policy": {"require_reason": require_reason, "max_expiry_days": max_expiry_days,
                       "warn_expiry_days": warn_expiry_days, "today": today.isoformat()},
        })
    else:
        from rich.text import Text

        for p in ex.problems:
            out.print(Text(printable(f"malformed {p.where}: {p.message}"), style="red"))
        for v in found:
            out.print(Text(printable(f"{v.kind} {v.entry.where}: {v.entry.id}: {v.message}"),
                           style="red" if v.blocking else "yellow"))
        sources = ", ".join(ex.sources) or "no ignore files"
        verdict = "passed" if passed else "failed"
        out.print(Text(printable(f"exceptions check {verdict}: {len(ex.entries)} exception(s) in {sources}"),
                       style="bold green" if passed else "bold red"))
    if not passed:
        raise typer.Exit(EXIT_FAILED)


@app.command("export")
def export_cmd(
    fmt: str = typer.Option(..., "--format", "-f", help="openvex, trivyignore-yaml or grype."),
    image: str | None = typer.Option(
        None, "--image", help="Resolve each exception to the packages it ignores in IMAGE (and add the base's list)."
    ),
    ignore_file: list[Path] = typer.Option([], "--ignore-file", help=IGNORE_FILE_HELP),
    base: str | None = typer.Option(
        None, "--base", help="Without --image: the base's list to add (an ignore file, or an engine image's label)."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to FILE (atomic); default stdout."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Trivy cache dir (with --image)."),
    skip_db_update: bool = typer.Option(False, "--skip-db-update", help="Use the cached DB as is (with --image)."),
    db_repository: str | None = typer.Option(None, "--db-repository", help="DB mirror (with --image)."),
    trivy: str | None = typer.Option(None, "--trivy", help="Trivy binary (with --image)."),
) -> None:
    """Write every exception (all ignore formats, plus the base image's) as ONE document in another format.

    OpenVEX needs --image for Trivy to match its statements (they name the image and the packages'
    PURLs). Exit 0 written, 2 could not (bad input, nothing to export as OpenVEX, the scan failed).
    """
    from ap_build.scan.exceptions import FORMATS, Exceptions, found_in_image, gather, render

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if base and image:
        raise UsageError("--base and --image both name the base's list", hint="with --image the image's label is read")
    ex: Exceptions = gather(list(ignore_file) or None, Path.cwd(), base)
    for p in ex.problems:
        note(f"not exported, malformed: {p.where}: {p.message}")
    entries, found, product = ex.entries + ex.base, None, None
    if image:
        from ap_build.scan.trivy import TrivyOptions

        opts = TrivyOptions(binary=trivy, cache_dir=cache_dir, skip_db_update=skip_db_update,
                            db_repository=db_repository, secrets=False)
        with status(f"scanning {image} to resolve the exceptions"):
            entries, found, product = found_in_image(image, ex, opts)
    text, skipped, count = render(fmt, entries, found, product, now=dt.datetime.now(dt.timezone.utc))  # noqa: UP017
    for s in skipped:
        note(f"not exported: {s}")
    if fmt == "openvex" and count == 0:
        raise UsageError("no active vulnerability exception to export: an OpenVEX document needs a statement",
                         hint="check the ignore files with `ap-build exceptions check`")
    if output:
        from ap_build import fsio

        fsio.write_output(output, text)
        info(f"wrote {output}: {count} item(s) in {fmt}")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def register(root: typer.Typer) -> None:
    """Add `ap-build exceptions check|export`."""
    root.add_typer(app, name="exceptions")
