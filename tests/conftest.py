"""Shared fixtures: the engine, the bootstrapped Debian base, the loopback registry.

End-to-end tests need the engine that `scripts/setup.sh` starts; they FAIL (not skip) without it,
so a CI machine that lost its engine cannot pass by skipping. Set AP_BUILD_SKIP_E2E=1 to skip them
deliberately on a laptop.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from support.images import TEST_VERSION, build_runtime

from ap_build.cli import main
from ap_build.engine import Engine
from ap_build.platform import LOCAL_REGISTRY


@contextlib.contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """Serialise one expensive set-up across pytest-xdist workers (and concurrent runs)."""
    with open(f"/tmp/ap-build-{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# End-to-end modules carry `xdist_group("engine")`. They mostly wait on the engine and the network, so they run in
# lanes side by side: each lane stays on one xdist worker (a lane's tests share built images and order), and a
# lane is a few modules of about the same length. A module not listed runs in the "engine" lane.
ENGINE_LANES = {
    "images": ("tests/images/test_images_e2e.py", "tests/images/test_user_images_e2e.py",
               "tests/images/test_multiarch"),
    "sources": ("tests/images/test_sources_e2e.py", "tests/images/test_platform_images_e2e.py"),
    "reproduce": ("tests/images/test_reproduce_e2e.py",),  # two cold runtime builds, one on a second storage root
    "repos": ("tests/migrate/", "tests/scaffold/", "tests/action/", "tests/scan/"),
    "run": ("tests/workflow/run/", "tests/hostile/", "tests/images/test_attest_e2e.py"),
}


def engine_lane(nodeid: str) -> str | None:
    """The lane of an end-to-end test (by its module's path), or None for the default "engine" lane."""
    return next((lane for lane, prefixes in ENGINE_LANES.items() if nodeid.startswith(prefixes)), None)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist names each test's group from its marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put each end-to-end test in its lane; skip them all where AP_BUILD_SKIP_E2E is set."""
    skip = pytest.mark.skip(reason="AP_BUILD_SKIP_E2E is set") if os.environ.get("AP_BUILD_SKIP_E2E") else None
    for item in items:
        if skip and "e2e" in item.keywords:
            item.add_marker(skip)
        if item.get_closest_marker("xdist_group") and (lane := engine_lane(item.nodeid)):
            item.add_marker(pytest.mark.xdist_group(lane))


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run the real `ap-build` entry point in-process (error mapping included) and capture its output."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The Docker-API engine (Podman via scripts/setup.sh on CI)."""
    return Engine.connect()


@pytest.fixture(scope="session")
def debian_base(engine: Engine) -> str:
    """A bootstrapped Debian image of the default suite (mmdebstrap), cached in the engine across runs."""
    from ap_build.images.base import bootstrap

    with machine_lock("bootstrap"):
        return bootstrap(engine)


@pytest.fixture(scope="session")
def registry() -> str:
    """The loopback registry (`host:port`) that scripts/setup.sh serves."""
    try:
        urllib.request.urlopen(f"http://{LOCAL_REGISTRY}/v2/", timeout=3).close()
    except OSError as exc:
        pytest.fail(f"loopback registry {LOCAL_REGISTRY} is not running ({exc}): run scripts/setup.sh")
    return LOCAL_REGISTRY


def _pushed_runtime(engine: Engine, debian_base: str, registry: str, runtime: str) -> str:
    from ap_build.images.build import push_image

    with machine_lock(f"runtime-{runtime}"):
        report = build_runtime(engine, runtime, debian_base)
        return push_image(engine, report.image_id, f"{registry}/ap-build/{runtime}-base:{TEST_VERSION}")


@pytest.fixture(scope="session")
def python_base_ref(engine: Engine, debian_base: str, registry: str) -> str:
    """The real Python runtime base, built in this session and pushed: `127.0.0.1:5000/...:TAG@sha256:...`."""
    return _pushed_runtime(engine, debian_base, registry, "python")


@pytest.fixture(scope="session")
def r_base_ref(engine: Engine, debian_base: str, registry: str) -> str:
    """The real R runtime base, built in this session and pushed: `127.0.0.1:5000/...:TAG@sha256:...`."""
    return _pushed_runtime(engine, debian_base, registry, "r")
