"""`ap-build image test`: the runtime contract as (a) container-structure-test and (b) a testinfra suite.

(a) `images/<runtime>/container-structure-test.yml`, the platform's own base-image structure test.
(b) `images/tests/` (pytest + testinfra against one running container): user, groups, ownership,
PATH, the AWS CLI, the language runtime, the CUDA runtime in the linker cache, user installs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from rich.text import Text

from ap_build.engine import Engine
from ap_build.errors import ToolError, UsageError
from ap_build.platform import RUNTIMES
from ap_build.resources import data_dir
from ap_build.scan.structure import StructureResult, run_structure_test


@dataclass
class SuiteResult:
    passed: bool
    total: int
    failures: list[str] = field(default_factory=list)


@dataclass
class ContractResult:
    image: str
    runtime: str
    structure: StructureResult
    suite: SuiteResult

    @property
    def passed(self) -> bool:
        return self.structure.passed and self.suite.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1, "image": self.image, "runtime": self.runtime, "passed": self.passed,
            "structure_test": {"passed": self.structure.passed, "total": self.structure.total,
                               "failures": self.structure.failures},
            "testinfra": {"passed": self.suite.passed, "total": self.suite.total, "failures": self.suite.failures},
        }

    def summary_lines(self) -> list[Text]:
        """The result for a terminal: Text pieces (test names and failures are data, never Rich markup)."""
        from ap_build.ui import printable, styled

        def part(name: str, ok: bool, total: int, failures: list[str]) -> list[Text]:
            if total == 0 and ok:  # not run (--common-only)
                return [styled(("SKIP", "yellow"), f" {name}: not run (--common-only)")]
            mark = ("PASS", "green") if ok else ("FAIL", "red")
            head = styled(mark, f" {name}: {total - len(failures)}/{total} passed")
            return [head, *(styled("  ", ("x", "red"), f" {printable(f)}") for f in failures)]

        verdict = ("contract met", "green") if self.passed else ("contract broken", "red")
        return [
            *part("structure test", self.structure.passed, self.structure.total, self.structure.failures),
            *part("testinfra suite", self.suite.passed, self.suite.total, self.suite.failures),
            styled(f"{self.image} ({self.runtime}): ", verdict),
        ]


def image_runtime(engine: Engine, image: str) -> str:
    env = dict(e.split("=", 1) for e in engine.inspect(image)["Config"].get("Env") or [])
    runtime = env.get("AIRFLOW_RUNTIME", "")
    if runtime not in RUNTIMES:
        raise UsageError(f"{image} does not say which runtime it is (AIRFLOW_RUNTIME={runtime!r})",
                         hint=f"pass --runtime {'|'.join(RUNTIMES)}")
    return runtime


def structure_config(runtime: str, cuda: bool) -> dict[str, Any]:
    """The shipped structure-test config; the CUDA check is dropped for a `--cuda-version none` image (pure)."""
    config = yaml.safe_load((data_dir("images") / runtime / "container-structure-test.yml").read_text())
    if not cuda:
        config["commandTests"] = [t for t in config["commandTests"] if "libcudart" not in str(t.get("args"))]
    return config


CONTRACT_LABEL = "ap-build.contract"  # on the suite's containers (images/tests/conftest.py), by run


def run_suite(engine: Engine, image: str, runtime: str, *, common_only: bool = False, timeout: int = 900,
              run_id: str = "") -> SuiteResult:
    """The testinfra suite on `image`, within `timeout` seconds. Its containers carry this run's label, so
    they are removed even when the suite is stopped at its time limit (its own clean-up never runs then)."""
    run_id = run_id or uuid.uuid4().hex
    try:
        return _run_suite(engine, image, runtime, common_only=common_only, timeout=timeout, run_id=run_id)
    finally:
        engine.remove_containers(f"{CONTRACT_LABEL}={run_id}")


def _run_suite(engine: Engine, image: str, runtime: str, *, common_only: bool, timeout: int, run_id: str
               ) -> SuiteResult:
    tests = data_dir("images") / "tests"
    files = [str(tests / "test_common.py")] + ([] if common_only else [str(tests / f"test_{runtime}.py")])
    with tempfile.TemporaryDirectory(prefix="ap-build-contract-") as tmp:
        junit = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-c", str(tests / "pytest.ini"), "--rootdir", str(tests),
               f"--junitxml={junit}", "--image", image, *files]
        env = {**os.environ, "DOCKER_HOST": os.environ.get("DOCKER_HOST") or engine.host,
               "AP_BUILD_CONTRACT_RUN": run_id}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise ToolError(f"the testinfra suite did not finish within {timeout} s on {image}",
                            hint="a busy machine or an emulated platform is slow: retry when it is quieter, or "
                            "run the items every runtime shares with --common-only") from exc
        if not junit.is_file():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            raise ToolError(f"the testinfra suite could not run: {' / '.join(tail)}",
                            hint="install ap-build with its test tools (pytest, pytest-testinfra)")
        return parse_junit(junit.read_text())


def parse_junit(xml_text: str) -> SuiteResult:
    """pytest's JUnit XML -> SuiteResult with one readable line per failure (pure)."""
    root = ET.fromstring(xml_text)
    total, failures = 0, []
    for case in root.iter("testcase"):
        total += 1
        for bad in (*case.findall("failure"), *case.findall("error")):
            message = (bad.get("message") or bad.text or "failed").strip().splitlines()[0]
            failures.append(f"{case.get('name')}: {message[:300]}")
    return SuiteResult(passed=total > 0 and not failures, total=total, failures=failures)


def run_contract(engine: Engine, image: str, runtime: str | None = None, *, common_only: bool = False,
                 timeout: int = 900) -> ContractResult:
    """Both halves of the contract on `image`, each within `timeout` seconds. `common_only`: only the suite's
    runtime-independent items (test_common.py; no structure test, which is per runtime): what a tiny test image
    of another platform can take in a few seconds under emulation."""
    runtime = runtime or image_runtime(engine, image)
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}", hint=f"choose one of: {', '.join(RUNTIMES)}")
    env = dict(e.split("=", 1) for e in engine.inspect(image)["Config"].get("Env") or [])
    if common_only:
        return ContractResult(image=image, runtime=runtime, structure=StructureResult(passed=True, total=0),
                              suite=run_suite(engine, image, runtime, common_only=True, timeout=timeout))
    with tempfile.TemporaryDirectory(prefix="ap-build-cst-") as tmp, ThreadPoolExecutor(max_workers=1) as pool:
        # the two halves are independent subprocesses that mostly wait on the engine: run them side by side
        suite = pool.submit(run_suite, engine, image, runtime, timeout=timeout)
        cfg = Path(tmp) / "container-structure-test.yml"
        cfg.write_text(yaml.safe_dump(structure_config(runtime, env.get("CUDA_VERSION", "none") != "none")))
        structure = run_structure_test(image, cfg, engine=engine, timeout=timeout)
        return ContractResult(image=image, runtime=runtime, structure=structure, suite=suite.result())
