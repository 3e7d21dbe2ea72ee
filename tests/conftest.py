"""Shared fixtures: the engine, the bootstrapped Debian base, the loopback registry.

End-to-end tests need the engine that `scripts/setup.sh` starts; they FAIL (not skip) without it,
so a CI machine that lost its engine cannot pass by skipping. Set AP_BUILD_SKIP_E2E=1 to skip them
deliberately on a laptop.
"""

from __future__ import annotations

import os
import urllib.request

import pytest

from ap_build.engine import Engine
from ap_build.platform import LOCAL_REGISTRY


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("AP_BUILD_SKIP_E2E"):
        skip = pytest.mark.skip(reason="AP_BUILD_SKIP_E2E is set")
        for item in items:
            if "e2e" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The Docker-API engine (Podman via scripts/setup.sh on CI)."""
    return Engine.connect()


@pytest.fixture(scope="session")
def debian_base(engine: Engine) -> str:
    """A bootstrapped Debian bookworm image (mmdebstrap), cached in the engine across runs."""
    from ap_build.images.base import bootstrap

    return bootstrap(engine)


@pytest.fixture(scope="session")
def registry() -> str:
    """The loopback registry (`host:port`) that scripts/setup.sh serves."""
    try:
        urllib.request.urlopen(f"http://{LOCAL_REGISTRY}/v2/", timeout=3).close()
    except OSError as exc:
        pytest.fail(f"loopback registry {LOCAL_REGISTRY} is not running ({exc}): run scripts/setup.sh")
    return LOCAL_REGISTRY
