"""ap-build is ready to publish: the sdist and the wheel build cleanly from the repository's files, with the
pinned build backend and no download, and pass `twine check --strict`; the wheel carries the data it needs."""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from scaffold.test_lint import tool


def test_sdist_and_wheel_build_cleanly_and_pass_twine_check(action_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(action_dir, src, symlinks=True)
    # as on a release runner: this machine's PYTHONDONTWRITEBYTECODE only makes setuptools say it skips bytecode
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cmd = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = proc.stdout + proc.stderr
    assert "Traceback" not in log and "error:" not in log.lower(), log
    assert "warning" not in log.lower() and "deprecat" not in log.lower(), log  # clean: no deprecated metadata
    sdist, wheel = sorted((tmp_path / "dist").iterdir(), key=lambda p: p.suffix)  # .gz, .whl
    assert sdist.name == "ap_build-0.1.0.tar.gz" and wheel.name == "ap_build-0.1.0-py3-none-any.whl"

    proc = subprocess.run([tool("twine"), "check", "--strict", str(sdist), str(wheel)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2

    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = email.message_from_bytes(z.read("ap_build-0.1.0.dist-info/METADATA"))
        entry = z.read("ap_build-0.1.0.dist-info/entry_points.txt").decode()
    # the templates and recipes the commands read, through ap_build/_data's links, and the license
    for rel in ("_data/templates/template.toml", "_data/templates/common/.github/workflows/scan-container.yml",
                "_data/images/python/image.toml", "_data/trivyignore"):
        assert f"ap_build/{rel}" in names, rel
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
    assert "ap-build = ap_build.cli:run" in entry
    assert meta["Requires-Python"] == ">=3.11" and meta["Description-Content-Type"] == "text/markdown"
    assert meta["License-Expression"] == "MIT" and meta["License-File"] == "LICENSE"  # PEP 639
    assert "Programming Language :: Python :: 3.11" in meta.get_all("Classifier")
    assert any(u.startswith("Repository, https://github.com/") for u in meta.get_all("Project-URL"))
    with tarfile.open(sdist) as t:
        assert "ap_build-0.1.0/LICENSE" in t.getnames()


def test_release_workflow_build_step_builds_both_with_the_pinned_bootstrap(action_dir: Path, tmp_path: Path) -> None:
    """release.yml's build step, run as the runner runs it (its `run:` with bash -eo pipefail in the checkout)."""
    import yaml

    src = tmp_path / "src"
    shutil.copytree(action_dir, src, symlinks=True)
    release = yaml.safe_load((src / ".github/workflows/release.yml").read_text())
    (step,) = [s for s in release["jobs"]["build"]["steps"] if "run" in s]
    (tmp_path / "step.sh").write_text(step["run"])
    (tmp_path / "runner-temp").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != str(Path(sys.executable).parent))
    env["RUNNER_TEMP"] = str(tmp_path / "runner-temp")
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(tmp_path / "step.sh")], cwd=src,
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = sorted(p.name for p in (src / "dist").iterdir())
    assert built == ["ap_build-0.1.0-py3-none-any.whl", "ap_build-0.1.0.tar.gz"]
    check = subprocess.run([tool("twine"), "check", "--strict", *map(str, (src / "dist").iterdir())],
                           capture_output=True, text=True, timeout=300, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
