"""CLI for `ap-build scaffold` (a thin layer over ap_build.scaffold.core)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

from ap_build.errors import EXIT_FAILED, UsageError
from ap_build.ui import err, info, out, print_json, printable, status, styled

STYLE = {
    "create": "green",
    "update": "cyan",
    "merge": "cyan",
    "conflict": "bold red",
    "delete": "yellow",
    "skip": "yellow",
    "orphan": "yellow",
    "missing": "yellow",
    "keep": "dim",
    "unchanged": "dim",
}


def scaffold_cmd(
    runtime: str | None = typer.Argument(None, metavar="RUNTIME", help="python or r (optional with --update)."),
    dest: Path | None = typer.Argument(None, metavar="DEST", help="Folder to create (or update)."),
    name: str | None = typer.Option(None, "--name", help="Repository name (default: DEST's folder name)."),
    org: str | None = typer.Option(None, "--org", help="GitHub organisation (default: ministryofjustice)."),
    base_image: str | None = typer.Option(
        None,
        "--base-image",
        help="Runtime base: name:tag@sha256:digest (used as given) or name:tag (resolved to its digest "
        "via the registry). Default: the platform's current base for the runtime.",
    ),
    description: str | None = typer.Option(None, "--description", help="One-line description."),
    owner_team: str | None = typer.Option(None, "--owner-team", help="CODEOWNERS owner: team, @org/team or @user."),
    registry: str | None = typer.Option(
        None, "--registry", help="ECR registry host the release pushes to (default: the one the OIDC login returns)."
    ),
    repository: str | None = typer.Option(
        None, "--repository", help="Image repository (default: <org>/<name> lower-cased, _ -> -)."
    ),
    update: bool = typer.Option(False, "--update", help="Bring DEST to the newest template (three-way merge)."),
    force: bool = typer.Option(False, "--force", help="Allow a non-empty DEST (existing files are never overwritten)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the files and contents; write nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print ap-build's JSON result on stdout."),
    templates: Path | None = typer.Option(
        None, "--templates", hidden=True, help="Template folder to use instead of the built-in one (template work)."
    ),
) -> None:
    """Create a runtime-template repository (python or r) in DEST, or --update one.

    Exit 0 done; 1 --update left conflicts (marked in the files, like git); 2 could not run
    (bad arguments, non-empty DEST, unresolvable base image).
    """
    from ap_build.scaffold import core
    from ap_build.scaffold.render import Answers
    from ap_build.scaffold.resolve import needs_resolving, resolve_base_image

    runtime, dest = _check_arguments(runtime, dest, update=update, force=force, templates=templates)
    if base_image and needs_resolving(base_image):
        with status(f"resolving {base_image} to a digest"):
            base_image = resolve_base_image(base_image)
        info(f"base image pinned as {base_image}")

    given = {
        "name": name,
        "org": org,
        "base_image": base_image,
        "description": description,
        "owner_team": owner_team,
        "registry": registry,
        "repository": repository,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if update:
        plan = core.plan_upgrade(dest, runtime=runtime, overrides=given, template_dir=templates)
    else:
        given.setdefault("name", dest.resolve().name)
        plan = core.plan_new(runtime, dest, Answers(**given), force=force, template_dir=templates)

    if not dry_run:
        core.apply(plan)
    _report(plan, dry_run=dry_run, as_json=as_json)
    if plan.conflicts:
        err.print(styled((f"{len(plan.conflicts)} conflict(s)", "bold red"),
                         printable(f": {', '.join(a.path for a in plan.conflicts)}"
                                   + ("" if dry_run else " (marked with <<<<<<< / >>>>>>>; resolve them and commit)"))))
        raise typer.Exit(EXIT_FAILED)


def _check_arguments(runtime: str | None, dest: Path | None, *, update: bool, force: bool,
                     templates: Path | None) -> tuple[str | None, Path]:
    """(runtime, DEST) as given, or UsageError; with --update the one argument is DEST."""
    if update:
        if dest is None and runtime is not None:
            runtime, dest = None, Path(runtime)
        if dest is None:
            raise UsageError("--update needs DEST", hint="ap-build scaffold --update path/to/repository")
    elif runtime is None or dest is None:
        raise UsageError("RUNTIME and DEST are required", hint="ap-build scaffold python|r DEST")
    if templates is not None and not (templates / "template.toml").is_file():
        raise UsageError(f"--templates {templates}: no template.toml there")
    if update and force:
        raise UsageError("--force does not apply to --update", hint="--update never overwrites your edits")
    return runtime, dest


def _report(plan: object, *, dry_run: bool, as_json: bool) -> None:
    """The plan as JSON or as lines (with every file's content on a dry run), and what to do next."""
    from ap_build.scaffold.core import Plan

    assert isinstance(plan, Plan)
    if as_json:
        print_json(plan.to_dict(contents=dry_run))
    else:
        _print_plan(plan)
        for a in plan.writes if dry_run else []:
            out.rule(Text(printable(f"{a.path} ({a.action})")))
            out.print(Text(a.content), end="")
        if not dry_run and plan.mode == "create":
            info(f"next: cd {plan.dest} && git init && docker build -t {plan.answers.name.lower()}:dev . "
                 f"&& ap-build test {plan.answers.name.lower()}:dev --config container-structure-test.yml")
    if dry_run:
        info("dry run: nothing written")


def _print_plan(plan: object) -> None:
    from ap_build.scaffold.core import Plan

    assert isinstance(plan, Plan)
    for a in plan.actions:
        style = STYLE.get(a.action, "")
        out.print(styled((f"{a.action:>9}", style), " ", printable(a.path)))
    if plan.mode == "update":
        verb = f"template {plan.runtime} v{plan.from_version} -> v{plan.template_version}"
    else:
        verb = f"{plan.runtime} template v{plan.template_version}"
    n = len(plan.writes)
    info(f"{plan.dest}: {verb}, {n} file(s) to write" if n else f"{plan.dest}: {verb}, up to date")


def register(app: typer.Typer) -> None:
    """Add `ap-build scaffold`."""
    app.command("scaffold")(scaffold_cmd)
