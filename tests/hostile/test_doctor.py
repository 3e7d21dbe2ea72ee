"""Hostile input to `doctor`: the registry it probes is printed as data, and a bad one is a usage error."""

from __future__ import annotations

import json

import pytest

from .support import assert_clean


def test_markup_in_the_registry_url_is_printed_as_typed(cli) -> None:
    r = cli("doctor", "--registry", "http://127.0.0.1:1/[/][bold]")
    assert_clean(r, (0, 2), "http://127.0.0.1:1/[/][bold]: ")
    assert "registry" in r.stdout


def test_json_output_carries_the_text_unchanged(cli) -> None:
    r = cli("doctor", "--json", "--registry", "http://127.0.0.1:1/[red]")
    assert_clean(r, (0, 2))
    checks = {c["name"]: c for c in json.loads(r.stdout)}
    assert checks["registry"]["detail"].startswith("http://127.0.0.1:1/[red]")


@pytest.mark.parametrize("registry", ["localhost:notaport", "[/]", "a\nb"])
def test_bad_registry_is_a_usage_error(cli, registry: str) -> None:
    assert_clean(cli("doctor", "--registry", registry), (2,), "--registry")


def test_missing_engine_is_one_error_line_naming_it(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/[/].sock")
    r = cli("doctor", "--registry", "http://127.0.0.1:1")
    assert_clean(r, (2,), "required parts are missing: engine")
    assert "[/].sock" in r.stdout
