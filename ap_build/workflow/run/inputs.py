"""The run's inputs from the command line (pure but for reading the `--secrets` file): `--param`,
`--logical-date`, `--task` and the `--secrets` dotenv file."""

from __future__ import annotations

import datetime as dt
import difflib
from pathlib import Path

from ap_build import names
from ap_build.errors import UsageError


def env_name(secret: str) -> str:
    """The env var a manifest secret becomes on the pod (`api-key` -> `SECRET_API_KEY`)."""
    return names.secret_env(secret)


def secret_values(declared: list[str], path: Path | None) -> dict[str, str]:
    """`SECRET_*` -> value, from a dotenv file keyed by the manifest's secret name (`api-key=...`) or its
    env var (`SECRET_API_KEY=...`). Every declared secret the file lacks is named in one error; values
    never appear in messages."""
    if not declared:
        return {}
    values: dict[str, str | None] = {}
    if path is not None:
        from dotenv import dotenv_values

        if not path.is_file():
            raise UsageError(f"{path}: no such secrets file", hint="pass a dotenv file: api-key=VALUE per line")
        values = dict(dotenv_values(path))
    found: dict[str, str] = {}
    missing: list[str] = []
    for name in declared:
        value = values.get(name, values.get(env_name(name)))
        if value is None:
            missing.append(f"{name} ({env_name(name)})")
        else:
            found[env_name(name)] = value
    if missing:
        where = f"{path} lacks" if path is not None else "no --secrets file gives"
        raise UsageError(f"{where} the secret(s) the manifest declares: {', '.join(missing)}",
                         hint="add a line `NAME=VALUE` for each to a dotenv file and pass it with --secrets FILE")
    return found


def parse_logical_date(text: str | None, start: dt.date, end: dt.date | None) -> dt.datetime:
    """`--logical-date` (a date or an ISO date-time; UTC unless it says otherwise), default now."""
    if text is None:
        value = dt.datetime.now(dt.UTC).replace(microsecond=0)
    else:
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise UsageError(f"--logical-date {text!r} is not a date",
                             hint="e.g. 2025-06-30 or 2025-06-30T06:00") from exc
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if value.date() < start or (end is not None and value.date() > end):
        span = f"{start} .. {end or ''}"
        raise UsageError(f"logical date {value.isoformat()} is outside the workflow's dates ({span})",
                         hint="pass --logical-date within dag.start_date and dag.end_date")
    return value


def parse_params(pairs: list[str], declared: dict[str, str]) -> dict[str, str]:
    """`--param k=v` -> run conf. Only the manifest's params exist on the platform (each is a PARAM_* env var)."""
    conf: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r}: expected KEY=VALUE")
        if key not in declared:
            close = difflib.get_close_matches(key, list(declared), n=1)
            raise UsageError(f"--param {key}: the manifest declares no such param",
                             hint=f"did you mean `{close[0]}`?" if close else
                             f"declared: {', '.join(declared) or 'none'} (dag.params in workflow.yml)")
        conf[key] = value
    return conf


def check_task(name: str, tasks: list[str]) -> None:
    """`--task NAME` must name a task of the manifest (`main` for a single-task one)."""
    if name not in tasks:
        close = difflib.get_close_matches(name, tasks, n=1)
        raise UsageError(f"--task {name}: no such task", hint=f"did you mean `{close[0]}`?" if close else
                         f"tasks: {', '.join(tasks)}")
