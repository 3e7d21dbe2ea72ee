"""The entry point's error mapping: usage errors and unexpected errors are one `error:` line, never a traceback."""

from __future__ import annotations

import pytest

from ap_build import cli as cli_mod


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["scan", "--nope"], "No such option: --nope"),
        (["scan"], "Missing argument"),
        (["bogus"], "No such command 'bogus'"),
        (["workflow", "compile", "--jobs", "abc"], "'abc' is not a valid int"),
        (["scan", "x.tar", "--severity[/]"], "No such option"),
    ],
)
def test_usage_errors_are_one_line(cli, args: list[str], fragment: str) -> None:
    r = cli(*args)
    assert r.exit_code == 2
    lines = r.stderr.splitlines()
    assert lines[0].startswith("error: ap-build") and fragment in lines[0]
    assert lines[1].startswith("hint: see `ap-build") and len(lines) == 2
    assert "╭" not in r.stderr and "Traceback" not in r.stderr


def test_unexpected_error_is_one_line_even_with_markup(cli, monkeypatch) -> None:
    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("[/] [bold]not markup\x1b[31m")

    monkeypatch.setattr(cli_mod, "app", boom)
    r = cli("scan", "x")
    assert r.exit_code == 2
    assert r.stderr.splitlines()[0] == "internal error: RuntimeError: [/] [bold]not markup\\x1b[31m"
    assert "Traceback" not in r.stderr


def test_no_args_prints_help_exit_2(cli) -> None:
    r = cli()
    assert r.exit_code == 2 and "Usage" in r.stdout + r.stderr and "error:" not in r.stderr


def test_version_and_help_exit_0(cli) -> None:
    assert cli("--version").exit_code == 0
    assert cli("scan", "--help").exit_code == 0
