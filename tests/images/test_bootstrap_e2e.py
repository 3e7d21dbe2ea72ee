"""End to end, without the engine: the bootstrapped Debian base (mmdebstrap from Debian's archive) is reproducible."""

from __future__ import annotations

import hashlib

import pytest

from ap_build.images.base import make_rootfs, spec_for

pytestmark = pytest.mark.e2e  # needs mmdebstrap and Debian's archive, not the engine: any xdist worker


def test_bootstrapped_base_is_reproducible(tmp_path) -> None:
    """Two bootstraps of the same suite, mirror and SOURCE_DATE_EPOCH give byte-identical root filesystems."""
    spec = spec_for()
    digests = {hashlib.sha256(make_rootfs(spec, tmp_path / f"{i}.tar").read_bytes()).hexdigest() for i in (1, 2)}
    assert len(digests) == 1
