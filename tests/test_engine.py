"""The engine client's own logic, on a scripted Docker API: a build whose cache lookup raced with another
client's image removal (Podman: `layer not known`) is started again; any other failure is not."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from ap_build import engine as engine_mod
from ap_build.engine import BuildFailed, Engine

RACED = ("checking if cached image exists from a previous build: getting top layer info: layer not known")


class ScriptedApi:
    """Replays one build stream per call (Podman's real error chunk for the race), then inspects by ID."""

    def __init__(self, *streams: list[dict]) -> None:
        self.streams, self.calls = list(streams), 0

    def build(self, **_: object):
        self.calls += 1
        return iter(self.streams.pop(0))

    def inspect_image(self, ref: str) -> dict:
        return {"Id": f"sha256:{ref}"}


def engine_with(api: ScriptedApi) -> Engine:
    return Engine(SimpleNamespace(api=api), "unix:///scripted.sock")  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_mod.time, "sleep", lambda _s: None)


def test_a_build_that_raced_an_image_removal_is_started_again(tmp_path: Path) -> None:
    api = ScriptedApi([{"stream": "STEP 1/2\n"}, {"error": RACED, "errorDetail": {"message": RACED}}],
                      [{"stream": "STEP 1/2\n"}, {"aux": {"ID": "abc123"}}])
    assert engine_with(api).build(tmp_path) == "sha256:abc123"
    assert api.calls == 2


def test_the_race_three_times_is_reported(tmp_path: Path) -> None:
    api = ScriptedApi(*([{"error": RACED}] for _ in range(3)))
    with pytest.raises(BuildFailed, match="layer not known"):
        engine_with(api).build(tmp_path)
    assert api.calls == 3


def test_a_failed_step_is_not_retried(tmp_path: Path) -> None:
    api = ScriptedApi([{"error": "RUN exit status 1", "errorDetail": {"message": "process exited with 1"}}])
    with pytest.raises(BuildFailed, match="process exited with 1"):
        engine_with(api).build(tmp_path)
    assert api.calls == 1
