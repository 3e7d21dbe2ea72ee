"""End to end: build the real Python and R runtime images, test the contract, push and pull by digest,
and every fault the CLI must turn into one line and a distinct exit code. (The sources' paths (the AWS CLI
zip, NVIDIA's and CRAN's repositories) are in test_sources_e2e.py.)"""

from __future__ import annotations

import json

import pytest
from support.cli import assert_one_line_error, cli

from ap_build.engine import Engine
from ap_build.images.contract import run_contract

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine")]


# --- the images themselves ---------------------------------------------------------------------

def test_python_image_meets_the_contract(python_base_ref: str) -> None:
    proc = cli("image", "test", python_base_ref, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["passed"] is True and report["runtime"] == "python", report
    assert report["structure_test"]["total"] >= 15 and report["testinfra"]["total"] >= 10


def test_r_image_meets_the_contract(engine: Engine, r_base_ref: str) -> None:
    result = run_contract(engine, r_base_ref)
    assert result.passed, result.summary_lines()
    assert result.runtime == "r"


def test_image_test_cli_fails_an_image_that_ends_as_root(engine: Engine, python_base_ref: str, tmp_path) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {python_base_ref}\nUSER root\n")
    image_id = engine.build(tmp_path)
    proc = cli("image", "test", image_id, "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["passed"] is False
    failures = report["structure_test"]["failures"] + report["testinfra"]["failures"]
    assert any("root" in f or "1000" in f for f in failures)  # the same base passes: test_python_image_meets_...


def test_cached_rebuild_via_cli_writes_a_report(debian_base: str, python_base_ref: str, tmp_path) -> None:
    report = tmp_path / "report.json"
    proc = cli("image", "build", "python", "--sources", "debian", "--base", debian_base, "--version", "0.0.0-test",
               "--tag", "localhost/ap-build/python-base:cli-test", "--report", str(report), "--json",
               "--no-reproducible")  # as the session's base was built: from its cache
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report.read_text())
    assert data == json.loads(proc.stdout)
    assert data["image_id"].startswith("sha256:") and data["size_bytes"] > 50_000_000
    assert data["base"] == debian_base and data["sources"] == "debian" and data["version"] == "0.0.0-test"
    assert {"python", "pip", "uv", "aws_cli", "cudart", "os"} <= set(data["components"])
    assert data["components"]["uv"] == "0.13.9" and data["components"]["cudart"].startswith("libcudart.so.13")


def test_push_prints_the_digest_reference_and_pulls_back(engine: Engine, python_base_ref: str, registry: str,
                                                        tmp_path) -> None:
    report = tmp_path / "r.json"
    report.write_text('{"digest": null}')
    target = f"{registry}/ap-build/push-test:1.0.0"
    proc = cli("image", "push", python_base_ref, target, "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    pinned = proc.stdout.strip()
    assert pinned.startswith(target + "@sha256:") and len(pinned.split("@sha256:")[1]) == 64
    assert json.loads(report.read_text())["digest"] == pinned.split("@", 1)[1]
    local_id = engine.inspect(python_base_ref)["Id"]
    engine.remove_image(target)
    assert engine.pull(pinned) == local_id


# --- faults: one line, a distinct exit code, nothing half-tagged ----------------------------

def test_unknown_runtime_is_a_usage_error() -> None:
    assert_one_line_error(cli("image", "build", "julia"), 2, "unknown runtime 'julia'")


def test_no_engine_is_one_clear_error() -> None:
    proc = cli("image", "build", "python", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert_one_line_error(proc, 2, "no container engine answered")
    assert "hint:" in proc.stderr


def test_a_base_that_does_not_resolve(registry: str) -> None:
    proc = cli("image", "build", "python", "--base", f"{registry}/nowhere/none:1@sha256:{'0' * 64}")
    assert_one_line_error(proc, 2, "does not resolve")
    proc = cli("image", "build", "python", "--base", "unpinned/thing:latest")
    assert_one_line_error(proc, 2, "has no digest")


def test_an_unreachable_mirror_fails_before_the_build(engine: Engine, debian_base: str) -> None:
    tag = "localhost/ap-build/python-base:bad-mirror"
    proc = cli("image", "build", "python", "--sources", "debian", "--base", debian_base, "--tag", tag,
               "--apt-mirror", "http://127.0.0.1:9/debian")
    assert_one_line_error(proc, 2, "http://127.0.0.1:9/debian does not answer", "hint: change --apt-mirror")
    assert not engine.image_exists(tag)
    assert "STEP" not in proc.stderr  # refused before the build started


def test_a_refused_push_is_reported(python_base_ref: str) -> None:
    proc = cli("image", "push", python_base_ref, "127.0.0.1:9/ap-build/refused:1")
    assert_one_line_error(proc, 2, "push")
