"""Fixtures for the runtime contract suite: one running container of `--image`, as its own user."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import docker
import pytest
import testinfra


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--image", required=True, help="image to test")


@pytest.fixture(scope="session")
def image(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--image")


@pytest.fixture(scope="session")
def client() -> docker.DockerClient:
    return docker.from_env()


# `ap-build image test` labels its run's containers, so it removes them even if it stops this suite at its limit
_RUN = os.environ.get("AP_BUILD_CONTRACT_RUN", "")
RUN_LABELS = {"ap-build.contract": _RUN} if _RUN else {}


@pytest.fixture(scope="session")
def config(client: docker.DockerClient, image: str) -> dict[str, Any]:
    """The image's config (User, WorkingDir, Env, Labels, Entrypoint)."""
    return client.api.inspect_image(image)["Config"]


@pytest.fixture(scope="session")
def env(config: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in config.get("Env") or [])


@pytest.fixture(scope="session")
def host(client: docker.DockerClient, image: str) -> Iterator[Any]:
    """A testinfra host on a container kept alive with `sleep infinity`, running as the image's USER."""
    container = client.containers.run(image, command=["sleep", "infinity"], entrypoint=[], detach=True,
                                       labels=RUN_LABELS)
    try:
        yield testinfra.get_host(f"docker://{container.id}")
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)


@pytest.fixture
def scratch(client: docker.DockerClient, image: str) -> Iterator[tuple[Any, Any]]:
    """(root, user): testinfra hosts on a throw-away container of its own, as root and as the image's user, for
    tests that change the image's content (install, upgrade, remove) as a downstream Dockerfile would."""
    container = client.containers.run(image, command=["sleep", "infinity"], entrypoint=[], detach=True,
                                       labels=RUN_LABELS)
    try:
        yield (testinfra.get_host(f"docker://root@{container.id}"), testinfra.get_host(f"docker://{container.id}"))
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)


_WHEEL_SCRIPT = r"""import base64, hashlib, zipfile
name, version, files, dest = ARGS
info = f"{name}-{version}.dist-info"
files = {**files, f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
         f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
record = []
with zipfile.ZipFile(f"{dest}/{name}-{version}-py3-none-any.whl", "w") as z:
    for path, text in files.items():
        z.writestr(path, text)
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
"""


def make_wheel(name: str, version: str, files: dict[str, str], dest: str = "/tmp") -> str:
    """A shell command that writes a minimal pure-Python wheel `name==version` holding `files` (path -> text; a
    `NAME-VERSION.data/scripts/X` path becomes a script) into `dest`, so installs need no network."""
    script = _WHEEL_SCRIPT.replace("ARGS", repr((name, version, files, dest)))
    return f"python3 - <<'PY'\n{script}PY"


def run_ok(host: Any, command: str) -> str:
    """Run `command` in the container; fail the test with its output unless it exits 0."""
    result = host.run(command)
    assert result.rc == 0, f"`{command}` exited {result.rc}: {result.stderr or result.stdout}"
    return result.stdout


__all__ = ["make_wheel", "run_ok", "subprocess"]
