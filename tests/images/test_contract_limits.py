"""The contract's time limit: a suite that does not finish is one error naming the image and what to do."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ap_build.errors import ToolError
from ap_build.images.contract import run_suite
from ap_build.images.platform_images import EMULATED_TIMEOUT


def test_a_suite_over_its_time_limit_is_a_tool_error_not_a_traceback() -> None:
    engine = SimpleNamespace(host="unix:///nonexistent.sock")  # never reached: pytest alone outlasts 0 s
    with pytest.raises(ToolError, match="did not finish within 0 s on img:1") as exc:
        run_suite(engine, "img:1", "python", timeout=0)  # type: ignore[arg-type]
    assert "--common-only" in (exc.value.hint or "")
    assert EMULATED_TIMEOUT >= 4 * 900  # an emulated platform gets far longer than a native one
