"""The engine client on the real engine: removing a test's image never stops another build that runs on one of
that image's untagged parents (Podman's forced removal deletes their containers too; CI's runs lost builds to it)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from ap_build.engine import BuildFailed, Engine

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine")]


def test_a_forced_removal_leaves_a_build_on_its_parent_running(engine: Engine, debian_base: str,
                                                              tmp_path: Path) -> None:
    word = uuid.uuid4().hex  # a cache of this test's own
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, step in ((first, "echo b > /b"), (second, "sleep 8 && echo c > /c")):
        folder.mkdir()
        (folder / "Dockerfile").write_text(f"FROM {debian_base}\nRUN echo {word} > /a\nRUN {step}\n")
    done = engine.build(first)
    ref = f"localhost/ap-build-test/forced-removal:{word[:8]}"
    engine.tag(done, ref)
    outcome: dict[str, object] = {}

    def build_second() -> None:
        try:
            outcome["id"] = engine.build(second)  # its first step is the first build's cached parent
        except BuildFailed as exc:
            outcome["error"] = exc.message

    runner = threading.Thread(target=build_second)
    runner.start()
    time.sleep(4)  # inside `sleep 8`, on a container of the shared parent
    engine.remove_image(ref, force=True)
    runner.join(timeout=120)
    assert "error" not in outcome, outcome
    built = str(outcome["id"])
    _code, out = engine.run(built, ["-c", "cat /a /c"], entrypoint=["sh"])
    assert out == f"{word}\nc\n", out
    engine.remove_image(built, force=True)
    engine.remove_image(ref, force=True)


def test_a_forced_removal_by_id_takes_every_name(engine: Engine, debian_base: str, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {debian_base}\nRUN echo {uuid.uuid4().hex} > /a\n")
    built = engine.build(tmp_path)
    for name in ("a", "b"):
        engine.tag(built, f"localhost/ap-build-test/two-names:{name}-{built[7:15]}")
    engine.remove_image(built, force=True)
    assert not engine.image_exists(built)
