"""The runner stand-in itself (ghrunner.py) does what GitHub's runner does with a composite action."""

from __future__ import annotations

from pathlib import Path

import pytest

from action.ghrunner import Evaluator, Unsupported, run_action

ACTION = """
name: t
inputs:
  who: {description: x, required: true}
  fail: {description: x, default: "false"}
outputs:
  greeting: {description: x, value: "${{ steps.greet.outputs.text }}"}
  after: {description: x, value: "${{ steps.after.outcome }}"}
runs:
  using: composite
  steps:
    - id: setup
      shell: bash
      env:
        WHO: ${{ inputs.who }}
        HERE: ${{ github.action_path }}
      run: |
        mkdir -p "$RUNNER_TEMP/bin"
        printf '#!/bin/sh\\necho "hello $1"\\n' > "$RUNNER_TEMP/bin/greet" && chmod +x "$RUNNER_TEMP/bin/greet"
        echo "$RUNNER_TEMP/bin" >> "$GITHUB_PATH"
        { echo "WHO_FROM_ENV<<EOF"; echo "$WHO"; echo "EOF"; } >> "$GITHUB_ENV"
        test "$HERE" = "$GITHUB_ACTION_PATH" && test -z "${INPUT_WHO:-}"
    - id: greet
      shell: bash
      run: |
        echo "text=$(greet "$WHO_FROM_ENV")" >> "$GITHUB_OUTPUT"
        echo "**$(greet "$WHO_FROM_ENV")**" >> "$GITHUB_STEP_SUMMARY"
        echo piped | cat >/dev/null
        if [ "$(pwd)" != "$GITHUB_WORKSPACE" ]; then exit 3; fi
    - id: fails
      if: inputs.fail == 'true'
      shell: bash
      run: exit 7
    - id: after
      shell: bash
      run: echo never after a failure
    - id: always
      if: ${{ always() && steps.greet.outputs.text != '' }}
      shell: bash
      run: echo "ran" >> "$GITHUB_STEP_SUMMARY"
"""


@pytest.fixture
def action(tmp_path: Path) -> Path:
    d = tmp_path / "act"
    d.mkdir()
    (d / "action.yml").write_text(ACTION)
    return d


def test_env_path_outputs_and_summary_flow_between_steps(action: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    res = run_action(action, {"who": "a $(touch x) b"}, workspace=ws, temp=tmp_path)
    assert res.outcome == "success", res.log
    assert res.outputs == {"greeting": "hello a $(touch x) b", "after": "success"}
    assert res.summary == "**hello a $(touch x) b**\nran\n"
    assert [s.outcome for s in res.steps] == ["success", "success", "skipped", "success", "success"]
    assert not (ws / "x").exists()


def test_a_failed_step_fails_the_action_and_skips_what_follows(action: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    res = run_action(action, {"who": "b", "fail": "true"}, workspace=ws, temp=tmp_path)
    assert (res.outcome, res.exit_code) == ("failure", 7)
    assert [s.outcome for s in res.steps] == ["success", "success", "failure", "skipped", "success"]
    assert res.outputs["after"] == "skipped"


def test_pipefail_and_required_inputs(action: Path, tmp_path: Path) -> None:
    (action / "action.yml").write_text(ACTION.replace("echo piped | cat", "false | cat"))
    res = run_action(action, {"who": "c"}, workspace=tmp_path, temp=tmp_path)
    assert res.outcome == "failure" and res.steps[1].outcome == "failure"
    with pytest.raises(ValueError, match="required"):
        run_action(action, {}, workspace=tmp_path, temp=tmp_path)
    with pytest.raises(ValueError, match="unexpected input"):
        run_action(action, {"who": "c", "nope": "1"}, workspace=tmp_path, temp=tmp_path)


def test_expressions() -> None:
    ev = Evaluator({"inputs": {"a": "Scan", "b": ""}, "steps": {}}, "success")
    assert ev.eval("inputs.a == 'scan'") is True  # case-insensitive, as GitHub's
    assert ev.eval("!inputs.b && inputs.a != 'x'") is True
    assert ev.interpolate("x-${{ inputs.a }}-${{ inputs.missing }}-y") == "x-Scan--y"
    assert ev.condition("inputs.a == 'scan'") and not Evaluator(ev.contexts, "failure").condition("inputs.a == 'scan'")
    with pytest.raises(Unsupported):
        ev.eval("secrets.TOKEN")
