"""`ap-build workflow validate|schema|compile|show|run`: manifests -> static Airflow DAGs and IAM policies."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ap_build.errors import EXIT_FAILED, UsageError
from ap_build.ui import err, info, out, print_json, printable, styled

workflow_app = typer.Typer(help="Validate workflow.yml manifests and compile them into Airflow DAGs.",
                           no_args_is_help=True)

ENV_OPT = typer.Option(None, "--environment", help="Environment, when the path does not tell it.")
PROJECT_OPT = typer.Option(None, "--project", help="Project, when the path does not tell it.")
WORKFLOW_OPT = typer.Option(None, "--workflow", help="Workflow, when the path does not tell it.")
MAX_JOBS = 64
CONFIG_OPT = typer.Option(None, "--config", help="Settings TOML overriding the platform's defaults.")


def _validate_all(paths: list[Path], environment: str | None, project: str | None, workflow: str | None):
    from ap_build.workflow.settings import identify
    from ap_build.workflow.validate import find_manifests, validate_file

    files = find_manifests(paths)
    if (environment or project or workflow) and len(files) > 1:
        raise UsageError("--environment/--project/--workflow apply to a single manifest",
                         hint="pass one file, or an environments/<env>/<project>/<workflow>/ tree")
    return [validate_file(f, identify(f, environment, project, workflow)) for f in files]


def _check_output(output: Path) -> None:
    hint = "pass a folder for the DAG files with -o (it is created if missing)"
    try:
        if "\0" in str(output) or (output.exists() and not output.is_dir()):
            raise UsageError(f"-o {output}: not a folder", hint=hint)
    except OSError as exc:
        raise UsageError(f"-o {output}: {exc.strerror or exc}", hint=hint) from exc


@workflow_app.command("validate")
def validate_cmd(
    paths: list[Path] = typer.Argument(..., help="workflow.yml files or an environments/ tree."),
    fmt: str = typer.Option("text", "--format", help="text or json."),
    environment: str = ENV_OPT, project: str = PROJECT_OPT, workflow: str = WORKFLOW_OPT,
) -> None:
    """Validate manifests: every problem at file:line:column. Exit 0 valid, 1 invalid, 2 could not run."""
    if fmt not in ("text", "json"):
        raise UsageError(f"unknown format {fmt!r}", hint="use text or json")
    results = _validate_all(paths, environment, project, workflow)
    bad = [r for r in results if r.problems]
    if fmt == "json":
        print_json({"schema_version": 1, "valid": not bad, "count": len(results), "invalid": len(bad),
                    "user_dags": sum(r.user_dag for r in results),
                    "files": [{"file": r.file, "valid": not r.problems, "user_dag": r.user_dag,
                               "problems": [p.to_dict() for p in r.problems]} for r in results]})
    else:
        for r in bad:
            for p in r.problems:
                out.print(printable(p), markup=False, highlight=False)
        user = sum(r.user_dag for r in results)
        summary = f"{len(results) - len(bad)}/{len(results)} valid"
        summary += f", {user} with a user-supplied DAG" if user else ""
        err.print(styled((summary, "red" if bad else "green")))
    if bad:
        raise typer.Exit(EXIT_FAILED)


@workflow_app.command("schema")
def schema_cmd() -> None:
    """Print the manifest's JSON Schema (for editors: see docs/workflow.md)."""
    from ap_build.workflow.model import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=True))


@workflow_app.command("compile")
def compile_cmd(
    paths: list[Path] = typer.Argument(..., help="workflow.yml files or an environments/ tree."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder: DIR/<environment>/<project>/<workflow>.py"),
    iam: bool = typer.Option(False, "--iam", help="Also write <workflow>.iam.json (role + policy)."),
    config: Path = CONFIG_OPT,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable summary."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Processes for big trees (0 = one per core)."),
    environment: str = ENV_OPT, project: str = PROJECT_OPT, workflow: str = WORKFLOW_OPT,
) -> None:
    """Validate, then compile every valid manifest into a static DAG file. Exit 1 if any is invalid."""
    from ap_build.workflow.compiler import compile_many
    from ap_build.workflow.settings import identify, load_settings
    from ap_build.workflow.validate import find_manifests

    if not 0 <= jobs <= MAX_JOBS:
        raise UsageError(f"--jobs {jobs}: must be 0 (one per core) to {MAX_JOBS}", hint="e.g. --jobs 2")
    _check_output(output)
    settings = load_settings(config)
    files = find_manifests(paths)
    if (environment or project or workflow) and len(files) > 1:
        raise UsageError("--environment/--project/--workflow apply to a single manifest")
    items = [(f, identify(f, environment, project, workflow)) for f in files]
    try:
        outcomes = compile_many(items, output, settings, iam=iam, jobs=jobs)
    except OSError as exc:
        raise UsageError(f"cannot write into {output}: {exc.strerror or exc}",
                         hint="pass a folder you can write to with -o") from exc
    written = [w for o in outcomes for w in o.written if w.endswith(".py")]
    skipped = [o.file for o in outcomes if o.user_dag and o.written]  # python_dag: the user's dag.py, copied
    bad = [o for o in outcomes if o.problems]
    for o in bad:
        for p in o.problems:
            err.print(printable(p), markup=False, highlight=False)
    if as_json:
        print_json({"schema_version": 1, "written": written, "user_dags": skipped, "invalid": [o.file for o in bad]})
    else:
        err.print(styled(f"compiled {len(written)} DAG(s) into {printable(output)}"
                         + (f", {len(skipped)} of them user-supplied (copied)" if skipped else ""),
                         ((f"; {len(bad)} invalid", "red") if bad else "")))
    if bad:
        raise typer.Exit(EXIT_FAILED)


@workflow_app.command("show")
def show_cmd(
    path: Path = typer.Argument(..., help="One workflow.yml."),
    config: Path = CONFIG_OPT,
    environment: str = ENV_OPT, project: str = PROJECT_OPT, workflow: str = WORKFLOW_OPT,
) -> None:
    """The compiled task graph, effective env vars (secrets masked), compute and schedule in words."""
    from ap_build.workflow.settings import load_settings
    from ap_build.workflow.show import render_tree

    results = _validate_all([path], environment, project, workflow)
    if len(results) > 1:
        raise UsageError(f"{path}: {len(results)} manifests; show takes one", hint="pass one workflow.yml")
    result = results[0]
    if result.problems:
        for p in result.problems:
            err.print(printable(p), markup=False, highlight=False)
        raise typer.Exit(EXIT_FAILED)
    out.print(render_tree(result.manifest, result.identity, load_settings(config)))


@workflow_app.command("run")
def run_cmd(
    path: Path = typer.Argument(..., help="One workflow.yml."),
    image: str = typer.Option(None, "--image", help="A local image to run instead of the manifest's registry image."),
    secrets: Path = typer.Option(None, "--secrets", help="Dotenv file with a value per declared secret."),
    params: list[str] = typer.Option([], "--param", help="KEY=VALUE run conf for a declared param (repeatable)."),
    task: str = typer.Option(None, "--task", help="Run only this task."),
    with_upstream: bool = typer.Option(False, "--with-upstream", help="With --task: also the tasks it depends on."),
    logical_date: str = typer.Option(None, "--logical-date", help="The run's logical date (default: now, UTC)."),
    aws_profile: str = typer.Option(None, "--aws-profile", help="Give the containers this AWS profile's credentials."),
    aws_env: bool = typer.Option(False, "--aws-env", help="Give the containers the host's AWS_* credential variables."),
    keep: bool = typer.Option(False, "--keep", help="Keep the containers (and Airflow's log) for inspection."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable result on stdout."),
    server: bool = typer.Option(True, "--server/--no-server", help="Through a warm Airflow kept between runs "
                                "(default; AP_BUILD_RUN_SERVER=0 turns it off) or in this process."),
    config: Path = CONFIG_OPT,
    environment: str = ENV_OPT, project: str = PROJECT_OPT, workflow: str = WORKFLOW_OPT,
) -> None:
    """Run the workflow here: real Airflow (dag.test), each task a container as its pod. Exit 0 all tasks
    succeeded, 1 a task failed, 2 could not run."""
    from ap_build.workflow.run.api import run_workflow
    from ap_build.workflow.run.checks import InvalidManifest, RunOptions
    from ap_build.workflow.run.view import summary_table

    opts = RunOptions(manifest=path, image=image, secrets=secrets, params=params, task=task,
                      with_upstream=with_upstream, logical_date=logical_date, aws_profile=aws_profile,
                      aws_env=aws_env, keep=keep, config=config, environment=environment, project=project,
                      workflow=workflow, server=server)
    try:
        result = run_workflow(opts)
    except InvalidManifest as exc:
        for p in exc.problems:
            err.print(printable(p), markup=False, highlight=False)
        raise
    if as_json:
        print_json(result.to_dict())
    else:
        out.print(summary_table(result.tasks))
        err.print(styled((f"{result.dag_id} {result.state}", "green" if result.ok else "red"),
                         f" in {result.seconds:.1f} s (Airflow {result.airflow}, image {result.platform}"
                         + (", first run: metadata DB set up" if result.cold_start else "")
                         + (", warm run server" if result.server_pid else "") + ")"))
        if result.kept:
            info(f"kept container(s): {', '.join(result.kept)}; Airflow's log: {result.log}")
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    app.add_typer(workflow_app, name="workflow")
