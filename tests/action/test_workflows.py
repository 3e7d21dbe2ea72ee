"""ap-build's own workflows and action: the real linters (offline, pedantic), SHA pins, least privilege."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from scaffold.test_lint import tool

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.yml"))
REUSABLE = ("reusable-container-test.yml", "reusable-container-scan.yml", "reusable-container-release.yml")
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def uses_lines(path: Path) -> list[str]:
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    return [ln.split("uses:", 1)[1].strip() for ln in lines if ln.startswith(("uses:", "- uses:"))]


def test_the_expected_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} == {"ci.yml", "release.yml", *REUSABLE}
    for name in REUSABLE:
        doc = yaml.safe_load((ROOT / ".github/workflows" / name).read_text())
        assert list(doc[True]) == ["workflow_call"], name  # PyYAML reads the key `on` as True


def test_zizmor_offline_pedantic_finds_nothing() -> None:
    proc = run([tool("zizmor"), "--offline", "--persona", "pedantic", "--no-progress", "--collect=workflows,actions",
                "."])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout
    for name in (*[f".github/workflows/{p.name}" for p in WORKFLOWS], "action.yml"):
        assert f"completed ./{name}" in proc.stderr
    # the only suppressions: a local `uses: ./.ap-build-action` that zizmor would write as `$/` (not in the runner yet)
    ignores = re.findall(r"zizmor: ignore\[([^\]]+)\]", "".join(p.read_text() for p in WORKFLOWS))
    assert set(ignores) == {"self-repository"}


def test_actionlint() -> None:
    proc = run([tool("actionlint"), *[str(p.relative_to(ROOT)) for p in WORKFLOWS]])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", [*WORKFLOWS, ROOT / "action.yml"], ids=lambda p: p.name)
def test_every_action_is_pinned_by_full_sha_with_its_version(path: Path) -> None:
    for use in uses_lines(path):
        ref = use.split(" #", 1)[0].strip()
        if ref.startswith("./"):
            continue
        assert PINNED.match(ref), use
        assert re.search(r" # v\d+\.\d+\.\d+$", use), f"{use}: no `# vX.Y.Z` comment"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_and_no_expression_in_scripts(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert doc["permissions"] == {}, "no permissions at the top: each job grants its own"
    for job in doc["jobs"].values():
        assert "permissions" in job
        assert "secrets" not in job
        for step in job.get("steps", []):
            assert "${{" not in step.get("run", ""), step
            if "actions/checkout@" in step.get("uses", ""):
                assert step["with"]["persist-credentials"] is False


def test_ci_runs_the_readme_test_command_and_release_publishes_without_a_token() -> None:
    assert "bash scripts/test.sh" in (ROOT / "README.md").read_text()
    ci = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    assert [s["run"] for s in ci["jobs"]["test"]["steps"] if "run" in s] == ["sudo bash scripts/test.sh"]
    release = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())
    build, publish = release["jobs"]["build"], release["jobs"]["publish"]
    assert any("attest-build-provenance" in s.get("uses", "") for s in build["steps"])
    assert "--require-hashes" in next(s["run"] for s in build["steps"] if "run" in s)
    step = next(s for s in publish["steps"] if "gh-action-pypi-publish" in s.get("uses", ""))
    assert "password" not in (step.get("with") or {})  # trusted publishing: PyPI trusts the OIDC token
    assert publish["permissions"] == {"id-token": "write"} and publish["environment"]["name"] == "pypi"


def test_the_template_pins_a_commit_of_this_repository_that_has_the_action_and_the_workflows() -> None:
    from ap_build.scaffold.render import load_manifest

    if run(["git", "rev-parse", "--git-dir"]).returncode != 0:
        pytest.skip("not a git checkout: the pinned commit cannot be looked up")
    sha = load_manifest()["ap_build"]["sha"]
    assert run(["git", "merge-base", "--is-ancestor", sha, "HEAD"]).returncode == 0, f"{sha} is not in HEAD's history"
    for path in ("action.yml", *[f".github/workflows/{name}" for name in REUSABLE], "locks/runtime.txt"):
        assert run(["git", "cat-file", "-e", f"{sha}:{path}"]).returncode == 0, path


def release_steps() -> list[dict]:
    doc = yaml.safe_load((ROOT / ".github/workflows/reusable-container-release.yml").read_text())
    return doc["jobs"]["release-container"]["steps"]


def test_the_release_verifies_the_base_with_the_platform_key_before_building() -> None:
    """`ap-build image verify "$BASE_IMAGE" --key .ap-build/base-signing.pub --json` runs (through the action, at
    the pinned commit) after the base is found and before anything is built or pushed, only when the key is there."""
    steps = release_steps()
    names = [s.get("name") for s in steps]
    find, checkout, verify = (names.index(n) for n in ("Find the base image", "Checkout ap-build",
                                                        "Verify the base image"))
    assert names.index("Checkout") < find < checkout < verify < names.index("Build and Push") < names.index("Sign")
    assert verify < names.index("Set Up Buildx") and verify < names.index("Configure AWS Credentials")
    step = steps[verify]
    assert step["uses"] == "./.ap-build-action" and step["with"]["command"] == "image verify"
    assert step["with"]["image"] == "${{ steps.base.outputs.image }}"
    assert step["with"]["args"] == "--key ${{ inputs.base-signing-key }}"
    assert step["if"] == steps[checkout]["if"] == "steps.base.outputs.verify == 'true'"
    assert steps[checkout]["with"]["ref"] == "${{ inputs.ap-build-ref }}"
    doc = yaml.safe_load((ROOT / ".github/workflows/reusable-container-release.yml").read_text())
    inputs = doc[True]["workflow_call"]["inputs"]  # PyYAML reads the key `on` as True
    assert inputs["base-signing-key"]["default"] == ".ap-build/base-signing.pub"
    assert not any(inputs[k].get("required") for k in ("base-signing-key", "ap-build-repository", "ap-build-ref"))


@pytest.mark.parametrize(("dockerfile", "key", "ref", "code", "outputs"), [
    ("FROM ghcr.io/o/base:1.0@sha256:" + "a" * 64 + "\nRUN true\n", True, "b" * 40, 0,
     {"verify": "true", "image": "ghcr.io/o/base:1.0@sha256:" + "a" * 64}),
    ("FROM --platform=linux/amd64 127.0.0.1:5000/b:2 AS build\nFROM scratch\n", True, "b" * 40, 0,
     {"verify": "true", "image": "127.0.0.1:5000/b:2"}),
    ("FROM ghcr.io/o/base:1.0\n", False, "", 0, {"verify": "false"}),  # no key in the repository: not verified
    ("FROM ghcr.io/o/base:1.0\n", True, "", 2, {}),  # a key but no ap-build pin: refused, never skipped
    ("ARG BASE\nFROM ${BASE}\n", True, "b" * 40, 2, {}),  # a build argument cannot be verified before the build
])
def test_the_release_finds_the_base_and_verifies_only_with_a_key(tmp_path: Path, dockerfile: str, key: bool,
                                                                  ref: str, code: int, outputs: dict) -> None:
    """The step's own script, run as the runner runs it (bash -e, GITHUB_OUTPUT)."""
    script = next(s for s in release_steps() if s.get("name") == "Find the base image")["run"]
    (tmp_path / "Dockerfile").write_text(dockerfile)
    if key:
        (tmp_path / ".ap-build").mkdir()
        (tmp_path / ".ap-build/base-signing.pub").write_text("-----BEGIN PUBLIC KEY-----\n")
    out = tmp_path / "github_output"
    out.touch()
    env = {"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(out), "DOCKERFILE": "Dockerfile",
           "BASE_SIGNING_KEY": ".ap-build/base-signing.pub", "AP_BUILD_REF": ref}
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == code, proc.stdout + proc.stderr
    got = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert got == outputs
    if code == 2:
        assert "::error title=ap-build::" in proc.stdout
