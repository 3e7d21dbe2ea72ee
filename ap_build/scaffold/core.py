"""`ap-build scaffold`: plan a new repository or an update, then write it (atomically, file by file).

The planning functions read the destination and return a `Plan` without writing anything; `apply`
carries a plan out. `--dry-run` stops after planning.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ap_build import __version__, fsio
from ap_build.errors import UsageError
from ap_build.scaffold.merge import merge3
from ap_build.scaffold.plan import FileAction, plan_create, plan_update, summary
from ap_build.scaffold.render import (
    Answers,
    example_files,
    render_files,
    template_version,
)
from ap_build.scaffold.state import STATE_PATH, ScaffoldState, dump_state, load_state

IGNORED_IN_EMPTY = {".git"}


@dataclass
class Plan:
    """What a scaffold or update will do to `dest`."""

    dest: Path
    runtime: str
    template_version: int
    answers: Answers
    actions: list[FileAction]
    from_version: int | None = None  # the recorded version, for an update
    mode: str = "create"  # create | update
    removed: list[str] = field(default_factory=list)

    @property
    def conflicts(self) -> list[FileAction]:
        return [a for a in self.actions if a.action == "conflict"]

    @property
    def writes(self) -> list[FileAction]:
        return [a for a in self.actions if a.writes]

    def to_dict(self, *, contents: bool = False) -> dict[str, object]:
        """ap-build's JSON result (`--json`)."""
        files = []
        for a in self.actions:
            d = a.to_dict()
            if contents and a.content is not None:
                d["content"] = a.content
            files.append(d)
        return {
            "schema_version": 1,
            "mode": self.mode,
            "dest": str(self.dest),
            "runtime": self.runtime,
            "template_version": self.template_version,
            "from_template_version": self.from_version,
            "answers": self.answers.to_dict(),
            "summary": summary(self.actions),
            "conflicts": [a.path for a in self.conflicts],
            "files": files,
        }


def _read(dest: Path, rel: str) -> str | None:
    """The text of `dest/rel` (None if missing), never through a symlink that leaves `dest`."""
    p = dest / rel
    for parent in p.relative_to(dest).parents:
        q = dest / parent
        if parent != Path(".") and q.exists() and not q.is_dir():
            raise UsageError(f"{q}: is a file where ap-build needs a folder (for {rel})",
                             hint="move it out of the way and re-run")
    if p.is_dir():
        raise UsageError(f"{p}: exists and is not a file", hint="move it out of the way and re-run")
    data = fsio.read_bytes(dest, rel) if dest.is_dir() else None
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{p}: not UTF-8 text, cannot compare it with the template",
                         hint="move it out of the way and re-run") from exc


def non_empty_entries(dest: Path) -> list[str]:
    """Entries in `dest` other than `.git` (a fresh `git init` counts as empty)."""
    if not dest.exists():
        return []
    if not dest.is_dir():
        raise UsageError(f"{dest}: exists and is not a directory", hint="choose another DEST")
    return sorted(p.name for p in dest.iterdir() if p.name not in IGNORED_IN_EMPTY)


def plan_new(
    runtime: str,
    dest: Path,
    answers: Answers,
    *,
    force: bool = False,
    template_dir: Path | None = None,
) -> Plan:
    """Plan a new repository in `dest`. Refuses a non-empty `dest` unless `force` (then never overwrites)."""
    answers = answers.resolved(runtime, template_dir)
    entries = non_empty_entries(dest)
    if (dest / STATE_PATH).exists():
        raise UsageError(
            f"{dest} was already made by ap-build scaffold ({STATE_PATH} exists)",
            hint=f"bring it to the newest template with: ap-build scaffold --update {dest}",
        )
    if entries and not force:
        shown = ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "")
        raise UsageError(
            f"{dest} is not empty ({shown})",
            hint="choose an empty or new folder, or pass --force to add the missing files (existing files are kept)",
        )
    rendered = render_files(runtime, answers, template_dir=template_dir)
    existing = {rel: _read(dest, rel) for rel in rendered}
    actions = plan_create(rendered, existing)
    examples = set(example_files(runtime, template_dir))
    version = template_version(template_dir)
    state = ScaffoldState(
        runtime=runtime,
        template_version=version,
        answers=answers,
        base={p: t for p, t in rendered.items() if p not in examples},
        ap_build_version=__version__,
    )
    actions.append(FileAction(STATE_PATH, "create", dump_state(state)))
    return Plan(dest=dest, runtime=runtime, template_version=version, answers=answers, actions=actions)


def load_repo_state(dest: Path) -> ScaffoldState:
    """The repository's validated record (`state.load_state`); UsageError if there is none."""
    p = dest / STATE_PATH
    text = _read(dest, STATE_PATH) if dest.is_dir() else None
    if text is None:
        raise UsageError(
            f"{dest}: no {STATE_PATH}, so this repository was not made by ap-build scaffold",
            hint="create one with `ap-build scaffold python|r DEST`; legacy repositories: `ap-build migrate`",
        )
    return load_state(text, str(p))


def plan_upgrade(
    dest: Path,
    *,
    runtime: str | None = None,
    overrides: dict[str, str] | None = None,
    template_dir: Path | None = None,
) -> Plan:
    """Plan `--update`: three-way merge every template file from the recorded base to today's template.

    `overrides` replaces recorded answers (e.g. a new --base-image); the generated workflows move to this
    ap-build's version.
    """
    state = load_repo_state(dest)
    if runtime and runtime != state.runtime:
        raise UsageError(
            f"{dest} is a {state.runtime} repository, not {runtime}",
            hint=f"run: ap-build scaffold --update {dest}",
        )
    answers = replace(state.answers, ap_build_version=__version__, **(overrides or {}))
    answers = answers.resolved(state.runtime, template_dir)
    new = render_files(state.runtime, answers, include_examples=False, template_dir=template_dir)
    paths = set(state.base) | set(new)
    current = {rel: _read(dest, rel) for rel in paths}
    actions = plan_update(state.base, current, new, merge3)
    version = template_version(template_dir)
    new_state = ScaffoldState(
        runtime=state.runtime,
        template_version=version,
        answers=answers,
        base=dict(new),
        ap_build_version=__version__,
    )
    state_text = dump_state(new_state)
    old_text = _read(dest, STATE_PATH)
    actions.append(FileAction(STATE_PATH, "unchanged" if old_text == state_text else "update", state_text))
    if actions[-1].action == "unchanged":
        actions[-1] = FileAction(STATE_PATH, "unchanged")
    return Plan(
        dest=dest,
        runtime=state.runtime,
        template_version=version,
        answers=answers,
        actions=actions,
        from_version=state.template_version,
        mode="update",
    )


def apply(plan: Plan) -> None:
    """Write the plan through the safe writer: every new content is staged beside its target first, then
    renamed into place (atomic per file; a refusal or a failure while staging leaves every file as it
    was). Nothing is written or deleted outside `plan.dest` or through a symlink that leaves it."""
    writes = sorted(plan.writes, key=lambda a: a.path == STATE_PATH)  # the record goes last: if anything
    with fsio.Batch(plan.dest) as batch:  # before it fails, the old record still describes the old base
        for a in writes:
            assert a.content is not None
            batch.write_text(a.path, a.content)  # new files 0644 (no template file is executable)
        for a in plan.actions:
            if a.action == "delete":
                batch.remove(a.path)
