"""Validate manifests: every problem of a file at once, each with file:line:column, key path, what was
expected and a hint. Beyond the model: cron, dates, dependencies, cycles, secret/env collisions and the
platform CI's path and role-name rules."""

from __future__ import annotations

import difflib
import functools
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter
from pydantic import BaseModel, ValidationError

from ap_build import names
from ap_build.errors import UsageError
from ap_build.workflow import model, templating
from ap_build.workflow.settings import Identity
from ap_build.yamlpos import DuplicateKey, Refused, load, locate

# Airflow's rule for a dag_id (airflow.utils.helpers.validate_key, KEY_REGEX = r"^[\w.-]+$", at most 250
# characters, no ".."), matched whole: Airflow's `$` also lets a trailing newline through.
DAG_ID_PART = re.compile(r"[\w.-]+")
DAG_ID_MAX = 250
MAX_PROBLEMS = 100  # per file
MAX_BYTES = 256 * 1024  # a manifest (the biggest real one is 42 kB); the YAML loader's own bounds: yamlpos.py
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually")


@dataclass
class Problem:
    file: str
    line: int
    column: int
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        text = f"{where}: {self.path + ': ' if self.path else ''}{self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.column, "path": self.path,
                "message": self.message, "hint": self.hint}


@dataclass
class Result:
    file: str
    identity: Identity | None
    manifest: model.Manifest | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.manifest is not None

    @property
    def user_dag(self) -> bool:
        return bool(self.manifest and self.manifest.dag.python_dag)


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that holds the field at `loc` (for "did you mean" hints)."""
    current: type[BaseModel] | None = model.Manifest
    for part in loc[:-1]:
        if current is None:
            return None
        info = current.model_fields.get(str(part))
        if info is None:
            # a dict of Task models (dag.tasks.<name>)
            return model.Task if current is model.Dag and loc[0] == "dag" and "tasks" in loc else None
        annotation = info.annotation
        candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        current = next((a for a in candidates if issubclass(a, BaseModel)), None)
        if current is None and str(part) == "tasks":
            current = model.Dag
    return current


def _pydantic_problems(err: ValidationError, text: str, file: str) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    errors = err.errors(include_url=False)
    for n, e in enumerate(errors):
        if len(problems) == MAX_PROBLEMS:  # each is located in the text: bound the work and the output
            problems.append(Problem(file, 1, 1, "", f"{len(errors) - n} more problem(s) not shown",
                                    f"fix the first {MAX_PROBLEMS} and validate again"))
            break
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith(("function-", "[key]"))))
        # unions report each branch: keep the first message per location
        loc = tuple(p for p in loc if p not in ("str", "int", "bool", "float", "ScheduleMap", "none", "list[str]")
                    and not (isinstance(p, str) and p.startswith(("literal[", "constrained-str"))))
        path = ".".join(str(p) for p in loc)
        kind = e["type"]
        if path in seen:
            continue
        seen.add(path)
        message, hint = e["msg"], ""
        if kind == "extra_forbidden":
            holder = _model_at(loc)
            options = list(holder.model_fields) if holder else []
            close = difflib.get_close_matches(str(loc[-1]), options, n=1)
            message = f"unknown key {loc[-1]!r}"
            hint = f"did you mean `{close[0]}`?" if close else f"allowed here: {', '.join(options)}"
        elif kind == "missing":
            message = f"required key {loc[-1]!r} is missing"
        elif kind == "literal_error":
            expected = e.get("ctx", {}).get("expected", "")
            close = difflib.get_close_matches(str(e.get("input")), re.findall(r"'([^']+)'", expected), n=1)
            message = f"{e.get('input')!r} is not allowed: must be one of {expected}"
            hint = f"did you mean `{close[0]}`?" if close else ""
        elif kind == "string_type" and isinstance(e.get("input"), (float, int)) and loc[-1] == "tag":
            message = f"expected a string, got the number {e['input']!r}"
            hint = f"YAML reads an unquoted {e['input']} as a number: quote it, e.g. tag: \"{e['input']}\""
        elif kind == "string_type" and isinstance(e.get("input"), (float, int, bool)):
            message = f"expected a string, got {type(e['input']).__name__} {e['input']!r}"
            hint = "quote the value"
        elif kind == "string_pattern_mismatch":
            message = f"{e.get('input')!r} does not match {e.get('ctx', {}).get('pattern')}"
        elif e.get("input") is None and kind.endswith("_type"):
            message = "an empty value (null) is not allowed"
            hint = "give a value, or `{}`/`[]` for an empty map/list, or remove the key"
        at = locate(text, loc, key=kind == "extra_forbidden")
        problems.append(Problem(file, at.line, at.column, path, message, hint))
    return problems


@functools.lru_cache(maxsize=1024)  # croniter's check is ~0.1 ms; real schedules repeat
def _cron_problem(schedule: str) -> str | None:
    if schedule in ("", "None") or schedule in PRESETS:
        return None
    if schedule.startswith("@"):
        return f"{schedule!r} is not an Airflow preset ({', '.join(PRESETS)})"
    fields = schedule.split()
    if len(fields) not in (5, 6) or not croniter.is_valid(schedule):
        return f"{schedule!r} is not a cron expression"
    return None


def _cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a list of task names (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep in graph and state.get(dep) is None and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if state.get(node) is None and (found := visit(node)):
            return found
    return None


Issue = tuple[tuple[str | int, ...], str, str, bool]  # (key path, message, hint, at the key rather than the value)


def _semantic_problems(m: model.Manifest, ident: Identity | None, text: str, file: str) -> list[Problem]:
    """What the schema cannot say: schedules, task graph, secrets against env vars, names the platform refuses."""
    textract = [(("iam", "textract"), "textract needs a non-empty iam.s3_read_only", "list the S3 paths Textract "
                 "reads", False)] if m.iam.textract and not m.iam.s3_read_only else []
    out: list[Problem] = []
    for loc, message, hint, key in [*_schedule_issues(m.dag), *_task_issues(m.dag), *textract, *_secret_issues(m),
                                    *_identity_issues(m, ident)]:
        at = locate(text, loc, key=key)
        out.append(Problem(file, at.line, at.column, ".".join(map(str, loc)), message, hint))
    return out


def _schedule_issues(d: model.Dag) -> list[Issue]:
    out: list[Issue] = []
    if isinstance(d.schedule, str) and (msg := _cron_problem(d.schedule.strip())):
        out.append((("dag", "schedule"), msg, "5 fields like \"0 6 * * MON-FRI\", an AWS-style 6-field cron, "
                    "or a preset", False))
    given = [k for k in ("seconds", "minutes", "hours", "datasets") if getattr(d.schedule, k, None) is not None]
    if isinstance(d.schedule, model.ScheduleMap) and len(given) != 1:
        out.append((("dag", "schedule"), "a schedule map needs exactly one of seconds, minutes, hours, datasets "
                    f"(got {', '.join(given) or 'none'})", "", False))
    if d.end_date and d.end_date < d.start_date:
        out.append((("dag", "end_date"), f"end_date {d.end_date} is before start_date {d.start_date}", "", False))
    return out


def _task_issues(d: model.Dag) -> list[Issue]:
    """Unknown, self- and cyclic dependencies between tasks, and an empty `tasks`."""
    tasks = d.tasks or {}
    out: list[Issue] = [(("dag", "tasks"), "tasks is empty", "remove `tasks` for a single-task DAG", False)
                        ] if d.tasks is not None and not tasks else []
    for name, task in tasks.items():
        for i, dep in enumerate(task.dependencies):
            loc = ("dag", "tasks", name, "dependencies", i)
            if dep == name:
                out.append((loc, f"task {name!r} depends on itself", "", False))
            elif dep not in tasks:
                close = difflib.get_close_matches(dep, list(tasks), n=1)
                out.append((loc, f"depends on unknown task {dep!r}",
                            f"did you mean `{close[0]}`?" if close else f"tasks: {', '.join(tasks)}", False))
    if cycle := _cycle({n: [x for x in t.dependencies if x != n] for n, t in tasks.items() if t.dependencies}):
        out.append((("dag", "tasks", cycle[0], "dependencies"), f"dependency cycle: {' -> '.join(cycle)}", "", False))
    return out


def _secret_issues(m: model.Manifest) -> list[Issue]:
    """An env var named as a secret's `SECRET_<NAME>` collides with it (one named as a PARAM_* may: the param wins)."""
    secret_vars = {names.secret_env(s): s for s in m.secrets}
    env_sources = [(("dag", "env_vars"), m.dag.env_vars)] + [
        (("dag", "tasks", n, "env_vars"), t.env_vars) for n, t in (m.dag.tasks or {}).items()]
    return [((*loc, key), f"env var {key} collides with secret {secret_vars[key]!r}, which sets the same name",
             "rename the env var", True) for loc, env in env_sources for key in env if key in secret_vars]


def _identity_issues(m: model.Manifest, ident: Identity | None) -> list[Issue]:
    """Folder names the platform's CI refuses, and an IAM role name over IAM's 64 characters."""
    if ident is None:
        return []
    out: list[Issue] = [((), f"{what} folder {part!r} contains `_`, which the platform's CI refuses",
                         "use `-` instead", False)
                        for part, what in ((ident.project, "project"), (ident.workflow, "workflow")) if "_" in part]
    if not m.iam.external_role and len(role := ident.role_name()) > 64:
        out.append((("dag",), f"role name {role!r} is {len(role)} characters (max 64)",
                    "shorten the project or workflow folder name, or set iam.external_role", False))
    return out


def dag_id_problem(ident: Identity) -> str | None:
    """Why `<project>.<workflow>` is not a dag_id Airflow accepts, or None."""
    for part, what in ((ident.project, "project"), (ident.workflow, "workflow")):
        if not DAG_ID_PART.fullmatch(part):
            return (f"{what} folder {part!r} cannot be part of an Airflow dag_id: only letters, digits, "
                    "`_`, `-` and `.` are allowed")
    dag_id = names.dag_id(ident.project, ident.workflow)
    if ".." in dag_id:
        return f"dag_id {dag_id!r} contains `..`, which Airflow refuses"
    if len(dag_id) > DAG_ID_MAX:
        return f"dag_id {dag_id!r} is {len(dag_id)} characters (Airflow allows {DAG_ID_MAX})"
    return None


def _template_problems(m: model.Manifest, text: str, file: str) -> list[Problem]:
    """Env var names and values and the image tag are Jinja templates to Airflow: allow-listed only."""
    found: list[Problem] = []
    if "\\" not in text and not templating.is_template(text):
        return found  # no value can hold `{{`, `{%` or `{#` (YAML folds lines with a space; escapes need `\\`)
    params = set(m.dag.params)
    fields: list[tuple[tuple[str | int, ...], str, bool]] = [(("dag", "tag"), m.dag.tag, False)]
    sources = [(("dag", "env_vars"), m.dag.env_vars)] + [
        (("dag", "tasks", n, "env_vars"), t.env_vars) for n, t in (m.dag.tasks or {}).items()]
    for loc, env in sources:
        for key, value in env.items():  # (only text with a `{` can be a template: skip the rest here)
            if "{" in key:
                fields.append(((*loc, key), key, True))
            if isinstance(value, str) and "{" in value:
                fields.append(((*loc, key), value, False))
    lines: list[str] = []
    for loc, value, is_key in fields:
        refusal = templating.check(value, params)
        if refusal is None:
            continue
        if len(found) == MAX_PROBLEMS:
            found.append(Problem(file, 1, 1, "", "more templates are refused (not shown)",
                                 f"fix the first {MAX_PROBLEMS} and validate again"))
            break
        lines = lines or _LINE_BREAK.split(text)  # YAML's line breaks (str.splitlines knows more)
        at = locate(text, loc, key=is_key)
        line, column = _point_at(lines, at.line, at.column, refusal)
        found.append(Problem(file, line, column, ".".join(map(str, loc)), refusal.message, refusal.hint))
    return found


def _point_at(lines: list[str], line: int, column: int, refusal: templating.Refusal) -> tuple[int, int]:
    """The file position of a refusal's `needle` in a value that starts at line:column."""
    if not 0 < line <= len(lines):
        return line, column
    block = lines[line - 1][column - 1:column] in ("|", ">")  # a block scalar starts on the next line
    target = line + refusal.line - 1 + block
    if not 0 < target <= len(lines):
        return line, column
    offset = lines[target - 1].find(refusal.needle, column - 1 if target == line else 0)
    return (target, offset + 1) if offset >= 0 else (line, column)


def validate_text(text: str, file: str, ident: Identity | None) -> Result:
    """Validate one manifest's text (pure)."""
    try:
        return _validate_text(text, file, ident)
    except RecursionError:  # the last guard: libyaml allows 1,000 levels, Python's stack fewer
        return Result(file=file, identity=ident, problems=[Problem(
            file, 1, 1, "", "values nest too deeply to validate", "flatten the structure: manifests nest ~6 deep")])


def _validate_text(text: str, file: str, ident: Identity | None) -> Result:
    """Load the text with PyYAML (file:line:column for every problem), then check its data."""
    result = Result(file=file, identity=ident)
    if ident is not None and (why := dag_id_problem(ident)):
        result.problems.append(Problem(file, 1, 1, "", why, "rename the folder: e.g. lower-case letters, digits, `-`"))
    try:
        data = load(text)
    except Refused as exc:
        result.problems.append(Problem(file, exc.line, exc.column, "", exc.message, exc.hint))
        return result
    except DuplicateKey as exc:
        result.problems.append(Problem(file, exc.second.line + 1, exc.second.column + 1, str(exc.key),
                                       f"duplicate key {exc.key!r} (first at line {exc.first.line + 1})",
                                       "YAML keeps only the last one: remove or merge the duplicates"))
        return result
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        result.problems.append(Problem(file, line, col, "", f"invalid YAML: {getattr(exc, 'problem', exc)}",
                                       "check indentation and quoting"))
        return result
    return _validate_data(data, text, file, ident, result)


def _validate_data(data: Any, text: str, file: str, ident: Identity | None, result: Result) -> Result:
    if not isinstance(data, dict):
        result.problems.append(Problem(file, 1, 1, "", "the manifest must be a mapping with dag, maintainers, tags"))
        return result
    try:
        result.manifest = model.Manifest.model_validate(data)
    except ValidationError as exc:
        result.problems.extend(_pydantic_problems(exc, text, file))
        return result
    result.problems.extend(_semantic_problems(result.manifest, ident, text, file))
    result.problems.extend(_template_problems(result.manifest, text, file))
    return result


def clear_caches() -> None:
    """Forget what earlier manifests taught (schedules, templates): a cold process, for benchmarks."""
    _cron_problem.cache_clear()
    templating.parse.cache_clear()


def read_manifest(path: Path) -> str:
    """A manifest's text: a regular file (never blocks on a FIFO or device), at most MAX_BYTES, UTF-8.
    Raises Refused (with the position of bad UTF-8) or OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused("not a regular file", "pass a workflow.yml file")
        data = fh.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise Refused(f"the manifest is more than {MAX_BYTES:,} bytes", "a workflow.yml is a few kilobytes: "
                      "is this the right file?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start]
        raise Refused(f"not UTF-8 text (byte {data[exc.start]:#04x})", "save the file as UTF-8",
                      before.count(b"\n") + 1, exc.start - (before.rfind(b"\n") + 1) + 1) from exc


def validate_file(path: Path, ident: Identity | None) -> Result:
    try:
        text = read_manifest(path)
    except Refused as exc:
        return Result(file=str(path), identity=ident,
                      problems=[Problem(str(path), exc.line, exc.column, "", exc.message, exc.hint)])
    except (OSError, ValueError) as exc:
        return Result(file=str(path), identity=ident,
                      problems=[Problem(str(path), 1, 1, "", f"cannot read the manifest: {exc}")])
    return validate_text(text, str(path), ident)


def find_manifests(paths: list[Path]) -> list[Path]:
    """Files as given; directories searched for workflow.yml (an environments/ tree) or *.yml."""
    found: list[Path] = []
    hint = "pass workflow.yml files or a folder"
    for p in paths:
        try:
            if p.is_dir():
                hits = sorted(p.rglob("workflow.yml")) or sorted(p.rglob("*.yml"))
                found.extend(hits)
            elif p.exists():
                found.append(p)
            else:
                raise UsageError(f"{p}: no such file or directory", hint=hint)
        except OSError as exc:
            raise UsageError(f"{p}: cannot read: {exc.strerror or exc}", hint=hint) from exc
    if not found:
        raise UsageError(f"no manifests found in {', '.join(map(str, paths))}", hint="pass workflow.yml files")
    return found
