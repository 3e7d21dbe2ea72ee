"""The `ap-build` command line: a thin Typer layer over the library, one sub-app per job.

Every command follows one exit-code convention (see `ap_build.errors`): 0 done or passed,
1 the check failed, 2 could not run. Errors are one line, never a traceback
(set AP_BUILD_DEBUG=1 to see one).
"""

from __future__ import annotations

import contextlib
import os
import sys

import typer

from ap_build import __version__

try:  # Typer >= 0.22 carries its own copy of Click
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older Typer on the real Click
    from click import exceptions as click_exc  # type: ignore[no-redef]
from ap_build.errors import EXIT_ERROR, ApBuildError
from ap_build.ui import err, error, info

app = typer.Typer(
    name="ap-build",
    help="Build, test, scan and ship Analytical Platform runtime images, repositories and workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",  # help only: usage errors are mapped to one line in main()
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
    from ap_build.scan.exceptions_cli import register as exceptions
    from ap_build.workflow.cli import register as workflow

    for register in (doctor, images, scan, exceptions, scaffold, migrate, workflow):
        register(app)


_register()


def report_error(exc: ApBuildError) -> int:
    error(exc.message, exc.hint)
    return exc.exit_code


def _usage_error(exc: click_exc.ClickException) -> int:
    """Click's usage errors as one `error:` line and a `hint:` (exit 2), like every other error."""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "ap-build"
    if isinstance(exc, click_exc.NoArgsIsHelpError):
        text = exc.format_message()  # Typer's rich help has printed itself already and left this ""
        if text:
            typer.echo(text)
        return EXIT_ERROR
    error(f"{path}: {exc.format_message()}", f"see `{path} --help`")
    return EXIT_ERROR


def _last_resort(exc: BaseException) -> None:
    """Print an unexpected error; cannot itself fail on the error's text (no markup, no styling)."""
    try:
        error(f"{type(exc).__name__}: {exc}", "re-run with AP_BUILD_DEBUG=1 for a traceback and report it",
              label="internal error:")
    except Exception:  # e.g. a broken stderr: the plainest possible write, then give up
        with contextlib.suppress(Exception):
            sys.stderr.write(f"internal error: {type(exc).__name__}\n")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: maps library and usage errors to one line and an exit code."""
    debug = bool(os.environ.get("AP_BUILD_DEBUG"))
    try:
        rv = app(args=argv, prog_name="ap-build", standalone_mode=False)
    except ApBuildError as exc:
        if debug:
            raise
        sys.exit(report_error(exc))
    except click_exc.ClickException as exc:
        sys.exit(_usage_error(exc))
    except (KeyboardInterrupt, typer.Abort):
        info("interrupted", style="red")
        sys.exit(130)
    except Exception as exc:  # the last line of defence: one line, not a traceback
        if debug:
            raise
        _last_resort(exc)
        sys.exit(EXIT_ERROR)
    if isinstance(rv, int) and not isinstance(rv, bool) and rv:  # typer.Exit(code) under standalone_mode=False
        sys.exit(rv)


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
            err.print(exc.code, markup=False, highlight=False)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # e.g. stdout piped into `head`, which has exited
            code = code or EXIT_ERROR
    os._exit(code)


if __name__ == "__main__":
    run()
