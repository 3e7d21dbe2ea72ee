"""The contract's time limit: a suite that does not finish is one error naming the image and what to do."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from support.tiny import tiny_image

from ap_build.engine import Engine
from ap_build.errors import ToolError
from ap_build.images.contract import CONTRACT_LABEL, run_suite
from ap_build.images.platform_images import EMULATED_TIMEOUT
from ap_build.images.platforms import AMD64


def test_a_suite_over_its_time_limit_is_a_tool_error_not_a_traceback() -> None:
    engine = SimpleNamespace(host="unix:///nonexistent.sock", remove_containers=lambda _label: None)  # pytest alone
    # outlasts 0 s: the engine is never reached
    with pytest.raises(ToolError, match="did not finish within 0 s on img:1") as exc:
        run_suite(engine, "img:1", "python", timeout=0)  # type: ignore[arg-type]
    assert "--common-only" in (exc.value.hint or "")
    assert EMULATED_TIMEOUT >= 4 * 900  # an emulated platform gets far longer than a native one


@pytest.mark.e2e
@pytest.mark.xdist_group("engine")
def test_a_suite_stopped_at_its_limit_leaves_no_container_behind(engine: Engine) -> None:
    """The suite's own clean-up never runs when it is killed at its limit; ap-build removes its run's containers
    by their label (here one the suite had started, `sleep infinity` as images/tests/conftest.py starts them)."""
    run_id, image = uuid.uuid4().hex, tiny_image(engine, AMD64)
    engine.client.containers.run(image, ["sleep", "3600"], detach=True, labels={CONTRACT_LABEL: run_id})
    mine = {"label": f"{CONTRACT_LABEL}={run_id}"}
    assert len(engine.client.containers.list(all=True, filters=mine)) == 1
    with pytest.raises(ToolError, match="did not finish within 0 s"):
        run_suite(engine, image, "python", common_only=True, timeout=0, run_id=run_id)
    assert engine.client.containers.list(all=True, filters=mine) == []
