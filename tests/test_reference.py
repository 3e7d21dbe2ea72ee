"""Image references: one grammar for the image pipeline, the engine layer and scaffold."""

from __future__ import annotations

import pytest

from ap_build.reference import is_reference, parse_ref
from ap_build.scaffold.render import check_reference


@pytest.mark.parametrize("ref", ["debian", "debian:trixie", "127.0.0.1:5000/ap/python-base:1.0",
                                 "ghcr.io/org/repo__x:v1@sha256:" + "a" * 64, "[::1]:5000/x", "a-b.c_d/e"])
def test_well_formed_references(ref: str) -> None:
    assert is_reference(ref)
    check_reference(ref)


@pytest.mark.parametrize("ref", ["", "Upper/Case:1", "x:1\nFROM y", "x y", "x:", "-x", "x:" + "t" * 129,
                                 "x@sha256:short", "a/" * 200 + "b"])
def test_malformed_references(ref: str) -> None:
    assert not is_reference(ref)


def test_a_registry_port_is_not_a_tag() -> None:
    assert parse_ref("localhost:5000/x") == ("localhost:5000/x", None, None)
    assert parse_ref("localhost:5000/x:1@sha256:ab") == ("localhost:5000/x", "1", "sha256:ab")
