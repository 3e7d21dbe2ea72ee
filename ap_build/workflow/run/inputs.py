"""The run's inputs from the command line: `--param`, `--logical-date`, `--task` (pure), the `--secrets`
dotenv file and the `--aws-env`/`--aws-profile` credentials."""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import shutil
import subprocess
from pathlib import Path

from ap_build import names
from ap_build.errors import ToolError, UsageError

MAX_SECRETS_BYTES = 1 << 20
MAX_ENV_BYTES = 128 * 1024  # one `NAME=value` string in a process's environment (Linux)
AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CREDENTIAL_EXPIRATION")


def env_name(secret: str) -> str:
    """The env var a manifest secret becomes on the pod (`api-key` -> `SECRET_API_KEY`)."""
    return names.secret_env(secret)


def secret_values(declared: list[str], path: Path | None) -> dict[str, str]:
    """`SECRET_*` -> value, from a dotenv file keyed by the manifest's secret name (`api-key=...`) or its
    env var (`SECRET_API_KEY=...`). Every declared secret the file lacks is named in one error; values
    never appear in messages, and a value no container can be given is refused here."""
    if not declared:
        return {}
    values: dict[str, str | None] = {}
    if path is not None:
        import io

        from dotenv import dotenv_values

        values = dict(dotenv_values(stream=io.StringIO(read_secrets_file(path))))
    found: dict[str, str] = {}
    missing: list[str] = []
    for name in declared:
        value = values.get(name, values.get(env_name(name)))
        if value is None:
            missing.append(f"{name} ({env_name(name)})")
        else:
            found[env_name(name)] = passable(value, f"{path}: the value of {name}")
    if missing:
        where = f"{path} lacks" if path is not None else "no --secrets file gives"
        raise UsageError(f"{where} the secret(s) the manifest declares: {', '.join(missing)}",
                         hint="add a line `NAME=VALUE` for each to a dotenv file and pass it with --secrets FILE")
    return found


def read_secrets_file(path: Path) -> str:
    """The `--secrets` file's text: a regular file of at most MAX_SECRETS_BYTES, UTF-8 (a named error
    otherwise, never the bytes themselves)."""
    try:
        if not path.is_file():
            raise UsageError(f"{path}: no such secrets file" if not path.exists() else
                             f"{path}: the secrets file is not a regular file",
                             hint="pass a dotenv file: api-key=VALUE per line")
        with open(path, "rb") as fh:
            data = fh.read(MAX_SECRETS_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the secrets file: {exc.strerror}", hint="check its permissions"
                         ) from None
    if len(data) > MAX_SECRETS_BYTES:
        raise UsageError(f"{path}: the secrets file is over {MAX_SECRETS_BYTES // 1024} KiB",
                         hint="pass a dotenv file with one line per declared secret")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UsageError(f"{path}:{line}: the secrets file is not UTF-8 text (byte 0x{data[exc.start]:02x})",
                         hint="save it as UTF-8") from None


def passable(value: str, what: str) -> str:
    """`value` if a container's environment can carry it: an env var is a C string (no NUL) of at most
    MAX_ENV_BYTES (Linux's MAX_ARG_STRLEN, `NAME=` included: exec fails on a longer one)."""
    if "\0" in value:
        raise UsageError(f"{what} holds a NUL character, which no container's environment can carry",
                         hint="remove it (the value itself is not shown)")
    if len(value.encode()) > MAX_ENV_BYTES - 256:
        raise UsageError(f"{what} is {len(value.encode())} bytes: over the {MAX_ENV_BYTES // 1024} KiB a "
                         "container's environment variable can hold", hint="pass a file or a path instead")
    return value


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


def aws_credentials(profile: str | None, from_env: bool) -> dict[str, str]:
    """Credentials for the containers (off by default): the host's AWS_* variables, or a profile's
    credentials resolved on the host by the AWS CLI (SSO and role profiles included)."""
    creds: dict[str, str] = {}
    if from_env:
        creds.update({k: os.environ[k] for k in AWS_VARS if os.environ.get(k)})
        if not creds:
            raise UsageError("--aws-env: none of the host's AWS credential variables is set",
                             hint=f"set {', '.join(AWS_VARS[:3])}, or use --aws-profile NAME")
    if profile:
        aws = shutil.which("aws")
        if aws is None:
            raise ToolError("--aws-profile needs the AWS CLI (v2) on this machine",
                            hint="install it, or export credentials and use --aws-env")
        try:
            proc = subprocess.run([aws, "configure", "export-credentials", "--profile", profile, "--format",
                                   "process"], capture_output=True, text=True, errors="replace", timeout=120)
        except subprocess.TimeoutExpired:
            raise ToolError(f"--aws-profile {profile}: the AWS CLI did not answer in 120 s",
                            hint="run `aws sso login`, or use --aws-env") from None
        if proc.returncode != 0:
            raise UsageError(f"--aws-profile {profile}: the AWS CLI could not resolve credentials",
                             hint=(proc.stderr.strip().splitlines() or ["run `aws sso login`?"])[-1][:200])
        try:
            data = json.loads(proc.stdout)
            creds.update({"AWS_ACCESS_KEY_ID": str(data["AccessKeyId"]),
                          "AWS_SECRET_ACCESS_KEY": str(data["SecretAccessKey"])})
            if data.get("SessionToken"):
                creds["AWS_SESSION_TOKEN"] = str(data["SessionToken"])
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise ToolError(f"--aws-profile {profile}: the AWS CLI's answer is not the credentials JSON of "
                            "`aws configure export-credentials`", hint="use the AWS CLI v2 (aws --version)") from None
    return {k: passable(v, f"the AWS credential {k}") for k, v in creds.items()}
