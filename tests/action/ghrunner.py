"""Run a composite action's steps the way GitHub's runner does, on this machine (for tests).

What the runner does for `using: composite` and what this module does the same way:
- each input takes its given value or its default (`inputs.*`); no INPUT_* variables are set;
- each step's `if:` (default `success()`) and each `${{ }}` in its `env:` values and in the action's
  `outputs.*.value` are evaluated with the contexts `inputs`, `github.action_path`, `steps.<id>.outputs.*`
  and `steps.<id>.outcome`/`conclusion`, and the status functions `success()`, `failure()`, `always()`,
  `cancelled()`;
- a `run:` step is written to a file and run as `bash --noprofile --norc -eo pipefail {0}` in
  GITHUB_WORKSPACE (or its `working-directory`), with GITHUB_ACTION_PATH, GITHUB_WORKSPACE and fresh
  GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH and GITHUB_STEP_SUMMARY files;
- what a step appends to GITHUB_ENV (`NAME=value` or `NAME<<DELIM` blocks) is in the environment of every
  later step, and each line of GITHUB_PATH goes in front of PATH for every later step (the latest first);
- the step summaries are concatenated into the job's summary; a failed step fails the action, and later
  steps run only if their `if:` says so.
Only what the actions in this repository use is supported; anything else raises `Unsupported`.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)
_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||[!()])|(?P<num>\d+)|"
                    r"(?P<name>[A-Za-z_][A-Za-z0-9_.-]*(?:\(\))?))")


class Unsupported(Exception):
    """The action uses something this small runner does not implement."""


@dataclass
class StepRun:
    id: str
    name: str
    outcome: str  # success | failure | skipped
    exit_code: int | None
    outputs: dict[str, str]
    log: str


@dataclass
class ActionRun:
    """The result of one action run: like the job step that `uses:` the action."""

    outcome: str  # success | failure
    exit_code: int  # the failing step's exit code, 0 on success
    outputs: dict[str, str]
    summary: str
    steps: list[StepRun] = field(default_factory=list)

    @property
    def log(self) -> str:
        return "\n".join(f"--- {s.name} ({s.outcome}, exit {s.exit_code})\n{s.log}" for s in self.steps)


def parse_commands_file(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV syntax: `name=value` lines and `name<<DELIM` ... `DELIM` blocks."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            value: list[str] = []
            while i < len(lines) and lines[i] != delim:
                value.append(lines[i])
                i += 1
            if i >= len(lines):
                raise ValueError(f"unterminated {name}<<{delim} block")
            i += 1
            out[name] = "\n".join(value)
        elif "=" in line:
            name, value_ = line.split("=", 1)
            out[name] = value_
        else:
            raise ValueError(f"invalid line in a commands file: {line!r}")
    return out


class Evaluator:
    """GitHub's expression language, the part composite actions here use."""

    def __init__(self, contexts: dict[str, Any], status: str) -> None:
        self.contexts, self.status = contexts, status

    def eval(self, expr: str) -> Any:
        self.tokens = self._tokenize(expr)
        self.pos = 0
        value = self._or()
        if self.pos != len(self.tokens):
            raise Unsupported(f"cannot evaluate {expr!r}")
        return value

    def interpolate(self, text: str) -> str:
        return EXPR.sub(lambda m: self.to_str(self.eval(m.group(1))), text)

    def condition(self, text: str | bool | None) -> bool:
        if text is None:
            text = "success()"
        if isinstance(text, bool):
            return text
        text = text.strip()
        m = re.fullmatch(r"\$\{\{(.*)\}\}", text, re.S)
        expr = m.group(1) if m else text
        if not re.search(r"\b(success|failure|always|cancelled)\(\)", expr):
            expr = f"success() && ({expr})"  # GitHub adds success() when no status function is named
        return self.truthy(self.eval(expr))

    @staticmethod
    def to_str(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    @staticmethod
    def truthy(value: Any) -> bool:
        return value not in (None, False, "", 0)

    @staticmethod
    def _tokenize(expr: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while pos < len(expr.rstrip()):
            m = _TOKEN.match(expr, pos)
            if not m or m.end() == pos:
                raise Unsupported(f"cannot tokenize {expr!r} at {pos}")
            kind = m.lastgroup or ""
            tokens.append((kind, m.group(kind)))
            pos = m.end()
        return tokens

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == ("op", "||"):
            self.pos += 1
            right = self._and()
            left = left if self.truthy(left) else right
        return left

    def _and(self) -> Any:
        left = self._cmp()
        while self._peek() == ("op", "&&"):
            self.pos += 1
            right = self._cmp()
            left = right if self.truthy(left) else left
        return left

    def _cmp(self) -> Any:
        left = self._unary()
        tok = self._peek()
        if tok in (("op", "=="), ("op", "!=")):
            self.pos += 1
            right = self._unary()
            # GitHub compares strings case-insensitively
            a, b = (v.lower() if isinstance(v, str) else v for v in (left, right))
            return (a == b) if tok[1] == "==" else (a != b)
        return left

    def _unary(self) -> Any:
        tok = self._peek()
        if tok == ("op", "!"):
            self.pos += 1
            return not self.truthy(self._unary())
        if tok == ("op", "("):
            self.pos += 1
            value = self._or()
            if self._peek() != ("op", ")"):
                raise Unsupported("unbalanced parentheses")
            self.pos += 1
            return value
        if tok is None:
            raise Unsupported("unexpected end of expression")
        self.pos += 1
        kind, text = tok
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return int(text)
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if text.endswith("()"):
            fn = text[:-2]
            if fn == "always":
                return True
            if fn == "success":
                return self.status == "success"
            if fn == "failure":
                return self.status == "failure"
            if fn == "cancelled":
                return False
            raise Unsupported(f"function {fn}()")
        return self._lookup(text)

    def _lookup(self, dotted: str) -> Any:
        parts = dotted.split(".")
        if parts[0] not in self.contexts:
            raise Unsupported(f"context {parts[0]!r} ({dotted})")
        value: Any = self.contexts
        for p in parts:
            value = value.get(p) if isinstance(value, dict) else None
        return value


def run_action(
    action_dir: Path,
    inputs: dict[str, str],
    *,
    workspace: Path,
    temp: Path,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> ActionRun:
    """Run the composite action in `action_dir` with `inputs`, as a job step in `workspace` would."""
    spec = yaml.safe_load((action_dir / "action.yml").read_text())
    if spec["runs"]["using"] != "composite":
        raise Unsupported(f"runs.using {spec['runs']['using']!r}")
    declared = spec.get("inputs") or {}
    unknown = set(inputs) - set(declared)
    if unknown:
        raise ValueError(f"unexpected input(s) {sorted(unknown)} (valid: {sorted(declared)})")
    values = {}
    for name, d in declared.items():
        if name in inputs:
            values[name] = inputs[name]
        elif (d or {}).get("required") and "default" not in (d or {}):
            raise ValueError(f"input {name!r} is required")
        else:
            values[name] = Evaluator.to_str((d or {}).get("default", ""))
    base_env = {k: v for k, v in (env if env is not None else os.environ).items() if not k.startswith("INPUT_")}
    base_env.update({
        "GITHUB_ACTION_PATH": str(action_dir),
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_ACTIONS": "true",
        "CI": "true",
        "RUNNER_TEMP": str(temp),
    })
    contexts: dict[str, Any] = {"inputs": values, "github": {"action_path": str(action_dir)}, "steps": {}}
    job_env: dict[str, str] = {}
    job_path: list[str] = []
    summary: list[str] = []
    steps: list[StepRun] = []
    status, exit_code = "success", 0
    for n, step in enumerate(spec["runs"]["steps"]):
        sid = step.get("id") or f"__{n}"
        name = step.get("name") or sid
        if "uses" in step:
            raise Unsupported(f"step {name!r}: `uses:` steps are not run here")
        if EXPR.search(step["run"]):
            raise Unsupported(f"step {name!r}: an expression inside `run:` (the runner would paste it into the script)")
        if (step.get("shell") or "bash") != "bash":
            raise Unsupported(f"step {name!r}: shell {step.get('shell')!r}")
        ev = Evaluator(contexts, status)
        if not ev.condition(step.get("if")):
            steps.append(StepRun(sid, name, "skipped", None, {}, ""))
            contexts["steps"][sid] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
            continue
        files = {k: temp / f"{k.lower()}-{uuid.uuid4().hex}" for k in
                 ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY")}
        for f in files.values():
            f.write_text("")
        script = temp / f"{uuid.uuid4().hex}.sh"
        script.write_text(step["run"])
        step_env = {**base_env, **job_env, **{k: str(v) for k, v in files.items()}}
        if job_path:
            step_env["PATH"] = os.pathsep.join([*reversed(job_path), base_env.get("PATH", "")])
        step_env.update({k: ev.interpolate(str(v)) for k, v in (step.get("env") or {}).items()})
        cwd = workspace / ev.interpolate(step["working-directory"]) if "working-directory" in step else workspace
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=cwd,
                              env=step_env, capture_output=True, text=True, timeout=timeout, check=False)
        outputs = parse_commands_file(files["GITHUB_OUTPUT"].read_text())
        job_env.update(parse_commands_file(files["GITHUB_ENV"].read_text()))
        job_path += [ln for ln in files["GITHUB_PATH"].read_text().splitlines() if ln.strip()]
        summary.append(files["GITHUB_STEP_SUMMARY"].read_text())
        outcome = "success" if proc.returncode == 0 else "failure"
        if outcome == "failure" and status == "success":
            status, exit_code = "failure", proc.returncode
        contexts["steps"][sid] = {"outputs": outputs, "outcome": outcome, "conclusion": outcome}
        steps.append(StepRun(sid, name, outcome, proc.returncode, outputs, proc.stdout + proc.stderr))
    final = Evaluator(contexts, status)
    outputs = {k: final.interpolate(str((v or {}).get("value", ""))) for k, v in (spec.get("outputs") or {}).items()}
    return ActionRun(status, exit_code, outputs, "".join(summary), steps)
