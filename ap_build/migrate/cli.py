"""CLI for `ap-build migrate PATH`: show the plan; write it only with --apply / --yes."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from ap_build.ui import info, note, out, print_json, printable, status, styled

STYLE = {"add": "green", "change": "cyan", "delete": "red", "keep": "yellow"}


def _print_diff(diff: str) -> None:
    for line in diff.splitlines():
        style = ""
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        out.print(Text(printable(line), style=style))  # the repository's bytes: shown, never obeyed


def migrate_cmd(
    path: Path = typer.Argument(..., metavar="PATH", help="The legacy repository (a git working tree)."),
    apply: bool = typer.Option(False, "--apply", help="Write the plan (asks first on a terminal)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Write the plan without asking (CI)."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan (and whether it was applied) as JSON."),
    force: bool = typer.Option(False, "--force", help="Allow a git working tree with uncommitted changes."),
    base_image: str | None = typer.Option(
        None,
        "--base-image",
        help="Runtime base: name:tag@sha256:digest (used as given) or name:tag (resolved to its digest). "
        "Default: the platform's current base for the runtime.",
    ),
    name: str | None = typer.Option(
        None, "--name", help="Repository name (default: the git remote's, else the folder's)."
    ),
    org: str | None = typer.Option(
        None, "--org", help="GitHub organisation (default: the git remote's, else moj-analytical-services)."
    ),
    diff: bool = typer.Option(True, "--diff/--no-diff", help="Show the unified diff of every file."),
    upgrade_pins: bool = typer.Option(
        False, "--upgrade-pins", help="Move the requirements.txt pins that cannot install on the base to the "
        "nearest version that does (the diff goes in MIGRATION.md). Without it no pin is ever changed."
    ),
    offline: bool = typer.Option(
        False, "--offline", help="Ask neither the container engine (the base's Python/R version) nor the package "
        "index: the pins are then reported as not checked."
    ),
) -> None:
    """Migrate a legacy Data Engineering repository onto the runtime template.

    Shows the plan (files to delete, add, change, with diffs); writes nothing without --apply or --yes.
    Exit 0 planned, applied or already migrated; 2 could not run (unknown layout, dirty git tree,
    bad --base-image).
    """
    from ap_build.migrate.apply import apply_plan, check_clean, read_snapshot
    from ap_build.migrate.plan import make_plan
    from ap_build.scaffold.resolve import needs_resolving, resolve_base_image

    if base_image and needs_resolving(base_image):
        with status(f"resolving {base_image} to a digest"):
            base_image = resolve_base_image(base_image)
        info(f"base image pinned as {base_image}")
    snap = read_snapshot(path)
    if name or org:
        snap = dataclasses.replace(snap, name=name or snap.name, org=org or snap.org)
    target, pins = _check_base(snap, base_image, offline)
    together = _check_proposal(snap, target, pins) if upgrade_pins else ""
    plan = make_plan(snap, base_image, target=target, pin_report=pins, upgrade_pins=upgrade_pins,
                     proposal_check=together)
    write = (apply or yes) and not plan.noop
    if write:
        check_clean(path, force)
    if plan.detection.kind == "migrated" or plan.noop:
        if as_json:
            print_json({**plan.to_dict(), "applied": False})
        info(f"{path}: {plan.detection.label}: nothing to do")
        return

    if not as_json:
        info(f"{path}: {plan.detection.label} -> {plan.detection.runtime} runtime template")
        for op in plan.ops:
            action = (f"{op.action:>7}", STYLE[op.action])
            out.print(styled(action, f" {printable(op.path)}  ", (printable(op.reason), "dim")))
        if diff:
            for op in plan.ops:
                if op.action == "change" or (op.action == "add" and op.path == "container-structure-test.yml"):
                    _print_diff(op.diff())
        for text in plan.notes:
            note(text)
        _print_versions(plan)
    ask = write and apply and not yes and sys.stdin.isatty() and not as_json
    if ask and not typer.confirm(f"Write {len(plan.writes)} file(s) and delete {len(plan.deletes)}?"):
        info("nothing written")
        raise typer.Exit(0)
    if write:
        apply_plan(plan)
    if as_json:
        print_json({**plan.to_dict(), "applied": write})
        return
    if write:
        note(f"{len(plan.writes)} file(s) written, {len(plan.deletes)} deleted. "
             "Read MIGRATION.md for the manual follow-ups (IAM, secrets, role names, region, versions), "
             "then review with git diff and commit.", label="migrated:", style="green")
    else:
        info("plan only: nothing written (re-run with --apply, or --yes in CI)")


def _check_base(snap: Any, base_image: str | None, offline: bool) -> tuple[Any, Any]:
    """The base's language version (asked of the image) and requirements.txt checked against it (side effects:
    the engine, uv and the package index); (None, None) for a repository that is not legacy."""
    from ap_build.migrate.detect import detect
    from ap_build.migrate.pins import check_pins
    from ap_build.migrate.plan import REQUIREMENTS
    from ap_build.migrate.target import inspect_target, published_target
    from ap_build.scaffold.render import load_manifest

    det = detect(snap.files, set(snap.listing), snap.root)
    if det.kind != "legacy":
        return None, None
    base = base_image or load_manifest()["defaults"]["base_image"][det.runtime]
    if offline:
        target = published_target(base, det.runtime, "--offline")
    else:
        with status(f"asking {base} for its {det.runtime} version"):
            target = inspect_target(base, det.runtime)
    if det.runtime != "python" or REQUIREMENTS not in snap.files:
        return target, None
    text = snap.files[REQUIREMENTS].decode("utf-8", "replace")
    with status(f"checking the pins of {REQUIREMENTS} with uv for {target.label}"):
        pins = check_pins(text, target, offline_reason="--offline" if offline else "")
    return target, pins


def _check_proposal(snap: Any, target: Any, pins: Any) -> str:
    """--upgrade-pins: whether the proposed pins resolve together (uv, dependencies included)."""
    from ap_build.migrate.pins import check_together, proposal

    if pins is None or not any(p.nearest for p in pins.problems):
        return ""
    text = proposal(snap.files["requirements.txt"].decode("utf-8", "replace"), pins.problems)
    with status("checking that the proposed pins resolve together"):
        return check_together(text, target)


def _print_versions(plan: Any) -> None:
    from ap_build.migrate.plan import pin_lines

    info(plan.versions)
    if plan.pins is None:
        return
    lines = pin_lines(plan.pins)
    every = not lines and plan.pins.summary.startswith("checked")
    info(f"pins: {plan.pins.summary}" + (": every pin installs there" if every else ""))
    for line in lines:
        note(line, label="pin:", style="yellow")


def register(app: typer.Typer) -> None:
    """Add `ap-build migrate`."""
    app.command("migrate")(migrate_cmd)
