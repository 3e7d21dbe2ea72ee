"""The `ap-build` command line: a thin Typer layer over the library, one sub-app per job.

Every command follows one exit-code convention (see `ap_build.errors`): 0 done or passed,
1 the check failed, 2 could not run. Errors are one line, never a traceback
(set AP_BUILD_DEBUG=1 to see one).
"""

from __future__ import annotations

import os
import sys

import typer

from ap_build import __version__
from ap_build.errors import EXIT_ERROR, ApBuildError
from ap_build.ui import err

app = typer.Typer(
    name="ap-build",
    help="Build, test, scan and ship Analytical Platform runtime images, repositories and workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ap-build {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """ap-build: one CLI for the platform's images, CI gate, repositories and workflows."""


def _register() -> None:
    from ap_build.doctor import register as doctor
    from ap_build.images.cli import register as images
    from ap_build.migrate.cli import register as migrate
    from ap_build.scaffold.cli import register as scaffold
    from ap_build.scan.cli import register as scan
    from ap_build.workflow.cli import register as workflow

    for register in (doctor, images, scan, scaffold, migrate, workflow):
        register(app)


_register()


def report_error(exc: ApBuildError) -> int:
    err.print(f"[bold red]error:[/] {exc.message}", soft_wrap=True)
    if exc.hint:
        err.print(f"[dim]hint:[/] {exc.hint}", soft_wrap=True)
    return exc.exit_code


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: maps library errors to one line and an exit code."""
    debug = bool(os.environ.get("AP_BUILD_DEBUG"))
    try:
        app(args=argv, prog_name="ap-build")
    except ApBuildError as exc:
        if debug:
            raise
        sys.exit(report_error(exc))
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]")
        sys.exit(130)
    except Exception as exc:  # the last line of defence: one line, not a traceback
        if debug:
            raise
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}", soft_wrap=True)
        err.print("[dim]hint:[/] re-run with AP_BUILD_DEBUG=1 for a traceback and report it")
        sys.exit(EXIT_ERROR)


def run() -> None:
    """The `ap-build` console script: `main()`, then exit without the interpreter's teardown.

    Every file is closed and every report written by then (context managers); only stdout and stderr
    need a flush. Tearing down the ~300 imported modules took 20 ms, an eighth of the scan gate's fixed
    cost over Trivy (bench/scan_overhead.py). `main()` itself exits normally (tests call it in-process).
    """
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else EXIT_ERROR
        if isinstance(exc.code, str):
            err.print(exc.code, markup=False)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # e.g. stdout piped into `head`, which has exited
            code = code or EXIT_ERROR
    os._exit(code)


if __name__ == "__main__":
    run()
