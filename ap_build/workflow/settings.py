"""Where a manifest lives (its identity) and the platform settings it is compiled with.

Settings are the platform's values (defaults.toml) overlaid with a user's `--config` file; the
identity comes from the manifest's path (environments/<environment>/<project>/<workflow>/workflow.yml).
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass as checked_dataclass
from typing_extensions import TypedDict

from ap_build import names
from ap_build.errors import UsageError

ENVIRONMENTS = ("development", "test", "production")
MAX_CONFIG_BYTES = 1024 * 1024  # a settings file is a few kilobytes
DEFAULTS = Path(__file__).parent / "defaults.toml"

Name = Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]  # a Kubernetes (DNS-1123) label
Text = Annotated[str, Field(max_length=4096, pattern=r"^[^\x00-\x1f\x7f]*$")]  # one line, no control characters


class HostAlias(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    ip: Annotated[str, Field(pattern=r"^[0-9a-fA-F:.]+$")]
    hostnames: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]+$")]]


class HmctsNetworking(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    annotations: dict[Text, Text]
    host_aliases: list[HostAlias]


@checked_dataclass(frozen=True, config=ConfigDict(extra="forbid", strict=True))
class Settings:
    """The platform's values (defaults.toml) overlaid with a `--config` file, type-checked on load."""

    registry: Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[a-z0-9._/-]+)?$")]
    namespace: Name
    airflow: Literal[2, 3]
    kube_config_file: Text
    kube_in_cluster: bool
    aws_region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")]
    slack_connection: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,250}$")]
    slack_base_url: Annotated[str, Field(pattern=r"^(https?://[^\s\x00-\x1f\x7f]+)?$")]
    notify_per: Literal["task", "dag"]
    aliases: dict[Text, Name]
    hmcts_sdp_networking: HmctsNetworking
    iam: dict[str, Any]                           # the [iam] table: checked by ap_build/workflow/iam.py


HINTS = {
    "registry": 'an image registry host, e.g. registry = "123456789012.dkr.ecr.eu-west-2.amazonaws.com"',
    "namespace": 'a Kubernetes namespace (lower-case letters, digits, `-`), e.g. namespace = "mwaa"',
    "airflow": "airflow = 2 (MWAA's Airflow 2.10) or airflow = 3, a number without quotes",
    "kube_config_file": 'a path, e.g. kube_config_file = "/usr/local/airflow/dags/.kube/config"',
    "kube_in_cluster": "kube_in_cluster = true or false, without quotes",
    "aws_region": 'an AWS region, e.g. aws_region = "eu-west-1"',
    "slack_connection": 'an Airflow connection id, e.g. slack_connection = "slack_api_default"',
    "slack_base_url": 'an http(s) URL, or "" for Slack\'s own',
    "notify_per": 'notify_per = "task" or "dag"',
    "aliases": 'a table of project folder -> short name: [aliases] then "my-long-project" = "mlp"',
    "hmcts_sdp_networking": "a table with annotations = { ... } and host_aliases = [{ ip = ..., hostnames = [...] }]",
    "iam": "the [iam] table: see docs/workflow.md, IAM",
}


def load_settings(path: Path | None = None) -> Settings:
    """The platform's defaults (defaults.toml) overlaid with a user's config file (UsageError, exit 2,
    naming the file, line and key of anything wrong)."""
    values = tomllib.loads(DEFAULTS.read_text())
    text = ""
    if path is not None:
        text = read_config(path)
        try:
            user = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            at = re.search(r" \(at line (\d+), column (\d+)\)$", str(exc))
            where = f"{path}:{at.group(1)}:{at.group(2)}" if at else str(path)
            raise UsageError(f"{where}: invalid TOML: {str(exc)[:at.start()] if at else exc}",
                             hint="write TOML with the keys of ap_build/workflow/defaults.toml") from None
        unknown = sorted(set(user) - set(values))
        if unknown:
            close = difflib.get_close_matches(unknown[0], values, n=1)
            raise UsageError(f"{_where(path, text, (unknown[0],))}: unknown setting(s) {', '.join(unknown)}",
                             hint=f"did you mean `{close[0]}`?" if close else f"known: {', '.join(sorted(values))}")
        values.update(user)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise _settings_error(exc, path, text) from None


def read_config(path: Path) -> str:
    """A `--config` file's text: a regular file of at most MAX_CONFIG_BYTES, UTF-8 (UsageError otherwise)."""
    hint = "pass a TOML file with the keys of ap_build/workflow/defaults.toml"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UsageError(f"{path}: not a regular file", hint=hint)
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the settings file: {exc.strerror or exc}", hint=hint) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise UsageError(f"{path}: more than {MAX_CONFIG_BYTES:,} bytes: not a settings file", hint=hint)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: not UTF-8 text (byte {data[exc.start]:#04x})",
                         hint="save the settings file as UTF-8") from None


def _settings_error(exc: ValidationError, path: Path | None, text: str) -> UsageError:
    first = exc.errors()[0]
    loc = tuple(first["loc"])
    key = ".".join(str(p) for p in loc)
    given = first.get("input")
    shown = repr(given) if isinstance(given, str | int | float | bool | list) and len(repr(given)) <= 60 else ""
    message = "not in the expected form" if first["type"] == "string_pattern_mismatch" else first["msg"]
    detail = message + (f" (got {shown})" if shown else "")
    where = _where(path, text, tuple(str(p) for p in loc)) if path is not None else "settings"
    return UsageError(f"{where}: {key}: {detail}", hint=HINTS.get(str(loc[0]), "see ap_build/workflow/defaults.toml"))


def _where(path: Path, text: str, keys: tuple[str, ...]) -> str:
    """`path:line` of the deepest of `keys` (a top-level key, a table, a key in it) found in the TOML text."""
    line = _line(text, keys)
    return f"{path}:{line}" if line else str(path)


def _line(text: str, keys: tuple[str, ...]) -> int | None:
    found, table = None, ()
    for n, raw in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[\[?\s*([^\]]+?)\s*\]", raw)
        if header:
            table = tuple(k.strip().strip('"\'') for k in header.group(1).split("."))
            if table == keys[:len(table)] and (found is None or found[1] < len(table)):
                found = (n, len(table))
            continue
        assign = re.match(r"\s*([A-Za-z0-9_\-\"'. ]+?)\s*=", raw)
        if assign:
            path = table + tuple(k.strip().strip('"\'') for k in assign.group(1).split("."))
            depth = len(path) if path == keys[:len(path)] else 0
            if depth and (found is None or found[1] < depth):
                found = (n, depth)
    return found[0] if found else None


@dataclass(frozen=True)
class Identity:
    """Where a manifest lives: environments/<environment>/<project>/<workflow>/workflow.yml."""

    environment: str
    project: str
    workflow: str

    def name(self, settings: Settings) -> str:
        """The project as used in every id and name (dag_id, service account, labels, pod and secret
        names, IAM role, secrets path): its configured alias, else the folder name."""
        return project_alias(self.project, settings)

    def dag_id(self, settings: Settings) -> str:
        """`<project alias>.<workflow>` (ap_build/names.py)."""
        return names.dag_id(self.name(settings), self.workflow)

    def resource_name(self, settings: Settings) -> str:
        """`<project alias>-<workflow>`: service account, pod names, secrets (ap_build/names.py)."""
        return names.resource_name(self.name(settings), self.workflow)

    def role_name(self, settings: Settings | None = None) -> str:
        """`airflow-<environment>-<project alias>-<workflow>` (without settings: the folder name, the
        longest the name can be, which is what validation checks against IAM's 64 characters)."""
        project = self.name(settings) if settings is not None else self.project
        return names.role_name(self.environment, project, self.workflow)


def project_alias(project: str, settings: Settings) -> str:
    """The one place a project folder name becomes its alias (`electronic-monitoring-data-store` -> `emds`)."""
    return settings.aliases.get(project, project)


def identify(path: Path, environment: str | None = None, project: str | None = None,
             workflow: str | None = None) -> Identity:
    """From explicit options, an environments/<env>/<project>/<workflow>/workflow.yml path, or a
    `<env>__<project>__<workflow>.yml` file name."""
    parts = path.resolve().parts
    found: tuple[str, str, str] | None = None
    if "environments" in parts[:-1]:
        i = len(parts) - 1 - parts[::-1].index("environments")
        if len(parts) - i == 5:
            found = (parts[i + 1], parts[i + 2], parts[i + 3])
    if found is None and path.name.count("__") == 2:
        found = tuple(path.stem.split("__"))  # type: ignore[assignment]
    env, proj, wf = (environment, project, workflow)
    if found:
        env, proj, wf = env or found[0], proj or found[1], wf or found[2]
    if not (env and proj and wf):
        raise UsageError(f"{path}: cannot tell the environment, project and workflow",
                         hint="use environments/<environment>/<project>/<workflow>/workflow.yml, or pass "
                              "--environment, --project and --workflow")
    if env not in ENVIRONMENTS:
        raise UsageError(f"{path}: environment {env!r} is not one of {', '.join(ENVIRONMENTS)}")
    for value, what in ((proj, "project"), (wf, "workflow")):  # they become <output>/<env>/<project>/<workflow>.py
        if value in (".", "..") or any(c in value for c in "/\\\0"):
            raise UsageError(f"{path}: {what} {value!r} is not a single folder name",
                             hint="ap-build writes only <output>/<environment>/<project>/<workflow>.py")
    return Identity(env, proj, wf)
