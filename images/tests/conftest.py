"""Fixtures for the runtime contract suite: one running container of `--image`, as its own user."""

from __future__ import annotations

import contextlib
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
    container = client.containers.run(image, command=["sleep", "infinity"], entrypoint=[], detach=True)
    try:
        yield testinfra.get_host(f"docker://{container.id}")
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)


def run_ok(host: Any, command: str) -> str:
    """Run `command` in the container; fail the test with its output unless it exits 0."""
    result = host.run(command)
    assert result.rc == 0, f"`{command}` exited {result.rc}: {result.stderr or result.stdout}"
    return result.stdout


__all__ = ["run_ok", "subprocess"]
