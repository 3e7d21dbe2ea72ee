"""Compile many manifests to files (the side-effect edge of `workflow compile`), in parallel for big trees."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ap_build import fsio
from ap_build.workflow import model, userdag
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


def _user_dag(path: Path, m: model.Manifest, ident: Identity, settings: Settings) -> tuple[str | None, Problem | None]:
    """A python_dag manifest's own DAG file, placeholders replaced; or the problem why there is none."""
    source = userdag.source_of(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = "there is no" if isinstance(exc, FileNotFoundError) else f"cannot read ({exc}) the"
        return None, Problem(str(path), 1, 1, "dag.python_dag", f"{reason} {source.name} beside the manifest",
                             hint=f"add the DAG file as {source}, or remove `python_dag: true`")
    return userdag.render_user_dag(text, m, ident, settings), None


def compile_one(path: Path, ident: Identity, output: Path, settings: Settings, iam: bool) -> Outcome:
    """Validate one manifest and write its DAG file (and IAM JSON) through the safe writer, together."""
    result = validate_file(path, ident)
    outcome = Outcome(file=str(path), problems=result.problems, user_dag=result.user_dag)
    m = result.manifest
    if result.problems or m is None:
        return outcome
    rel = Path(ident.environment, ident.project, f"{ident.workflow}.py")
    files: dict[Path, str] = {}
    if result.user_dag:
        text, problem = _user_dag(path, m, ident, settings)
        if problem is not None:
            outcome.problems = [problem]
            return outcome
        files[rel] = text or ""
    else:
        files[rel] = render_dag(m, ident, settings, source=str(path))
    if iam:  # python_dag workflows too: the platform's Terraform gives every workflow.yml its IAM
        files[rel.with_suffix(".iam.json")] = render_iam(workflow_iam(m, ident, settings, source=str(path)))
    with fsio.Batch(output) as batch:  # 0644 for a new file, an existing file's mode kept
        for name, text in files.items():
            batch.write_text(name, text)
    outcome.written = [str(output / name) for name in files]
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
