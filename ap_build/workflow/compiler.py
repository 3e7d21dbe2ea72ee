"""Compile many manifests to files (the side-effect edge of `workflow compile`), in parallel for big trees."""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ap_build.fsio import write_text
from ap_build.workflow.codegen import render_dag
from ap_build.workflow.iam import render as render_iam
from ap_build.workflow.iam import workflow_iam
from ap_build.workflow.settings import Identity, Settings
from ap_build.workflow.validate import Problem, validate_file


@dataclass
class Outcome:
    file: str
    problems: list[Problem] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    user_dag: bool = False


def write_atomic(path: Path, text: str) -> None:
    """Temp file in the same folder + rename: a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def compile_one(path: Path, ident: Identity, output: Path, settings: Settings, iam: bool) -> Outcome:
    result = validate_file(path, ident)
    outcome = Outcome(file=str(path), problems=result.problems, user_dag=result.user_dag)
    if result.problems or result.manifest is None:
        return outcome
    target = output / ident.environment / ident.project / f"{ident.workflow}.py"
    if iam:  # python_dag workflows too: the platform's Terraform gives every workflow.yml its IAM
        doc = render_iam(workflow_iam(result.manifest, ident, settings, source=str(path)))
        outcome.written.append(str(write_text(output, target.relative_to(output).with_suffix(".iam.json"), doc)))
    if result.user_dag:
        return outcome
    write_atomic(target, render_dag(result.manifest, ident, settings, source=str(path)))
    outcome.written.append(str(target))
    return outcome


def _batch(args: tuple[list[tuple[Path, Identity]], Path, Settings, bool]) -> list[Outcome]:
    items, output, settings, iam = args
    return [compile_one(p, i, output, settings, iam) for p, i in items]


def compile_many(items: list[tuple[Path, Identity]], output: Path, settings: Settings, *, iam: bool = False,
                 jobs: int = 0) -> list[Outcome]:
    """Compile every manifest; with more than a few dozen, spread over `jobs` processes (0 = one per core)."""
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1 or len(items) < 64:
        return _batch((items, output, settings, iam))
    chunks = [items[i::jobs] for i in range(jobs)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        done = list(pool.map(_batch, [(chunk, output, settings, iam) for chunk in chunks]))
    order = {str(p): n for n, (p, _) in enumerate(items)}
    return sorted((o for batch in done for o in batch), key=lambda o: order[o.file])
