"""Benchmark `ap-build migrate`: tokenizer, planning and atomic apply, each against a baseline in the same run.

Run: python bench/migrate_plan.py [--files N]
- tokenizer: ap_build.migrate.dockerfile.parse vs dockerfile-parse's `.structure` on a large Dockerfile;
- plan: read_snapshot + make_plan on a legacy repository with N user files vs `git status --porcelain`
  on the same tree (the dirty check every apply runs anyway);
- apply: atomic writes (temp file + fsync + rename) vs plain `Path.write_bytes` of the same files.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dockerfile_parse import DockerfileParser

from ap_build.migrate.apply import apply_plan, read_snapshot
from ap_build.migrate.dockerfile import parse
from ap_build.migrate.plan import make_plan

FIXTURE = Path(__file__).resolve().parents[1] / "tests/migrate/fixtures/python_basic"
BASE = "127.0.0.1:5000/ap-build/python-base:1.0.0@sha256:" + "c" * 64


def timed(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def big_dockerfile(n: int) -> str:
    body = (FIXTURE / "Dockerfile").read_text()
    extra = "".join(
        f"# step {i}\nRUN echo {i} && \\\n    ls /etl/{i} && \\\n    true\nENV V{i}=/etl/{i}\n" for i in range(n)
    )
    return body.replace("RUN chmod -R 777 .\n", extra + "RUN chmod -R 777 .\n")


def make_repo(root: Path, files: int) -> Path:
    repo = root / "repo"
    shutil.copytree(FIXTURE, repo)
    for i in range(files):
        d = repo / "src" / f"pkg{i // 100}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i}.py").write_text(f'PATH = "s3://alpha-bench/{i}/"\n' + "x = 1\n" * 40)
    env = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"}
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True, env={**env, "PATH": "/usr/bin:/bin"})
    return repo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--instructions", type=int, default=500)
    args = ap.parse_args()

    text = big_dockerfile(args.instructions)
    ours = timed(lambda: parse(text), 20)
    theirs = timed(lambda: DockerfileParser(fileobj=io.BytesIO(text.encode())).structure, 20)
    lines = text.count("\n")
    print(f"tokenizer  {lines} lines: ours {ours * 1e3:.1f} ms, dockerfile-parse {theirs * 1e3:.1f} ms, "
          f"ratio {ours / theirs:.2f}x (baseline: dockerfile-parse)")

    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp), args.files)
        plan_t = timed(lambda: make_plan(read_snapshot(repo), BASE), 5)
        git_t = timed(lambda: subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], check=True,
                                             capture_output=True), 5)
        print(f"plan       {args.files} user files: {plan_t * 1e3:.0f} ms, git status {git_t * 1e3:.0f} ms, "
              f"ratio {plan_t / git_t:.1f}x (baseline: git status --porcelain)")

        plan = make_plan(read_snapshot(repo), BASE)
        writes = [(repo / op.path, op.new or b"") for op in plan.writes]
        apply_t = timed(lambda: apply_plan(plan), 5)  # idempotent: same bytes each time (deletes once)

        def plain() -> None:
            for path, data in writes:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)

        plain_t = timed(plain, 5)
        print(f"apply      {len(writes)} files: atomic {apply_t * 1e3:.1f} ms, plain writes {plain_t * 1e3:.1f} ms, "
              f"ratio {apply_t / plain_t:.1f}x (baseline: Path.write_bytes, no fsync)")


if __name__ == "__main__":
    main()
