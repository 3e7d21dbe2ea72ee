"""Where a manifest lives (its identity) and the platform settings it is compiled with.

Settings are the platform's values (defaults.toml) overlaid with a user's `--config` file; the
identity comes from the manifest's path (environments/<environment>/<project>/<workflow>/workflow.yml).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ap_build import names
from ap_build.errors import UsageError

ENVIRONMENTS = ("development", "test", "production")


@dataclass(frozen=True)
class Settings:
    registry: str
    namespace: str
    airflow: int
    kube_config_file: str
    kube_in_cluster: bool
    aws_region: str
    slack_connection: str
    slack_base_url: str
    notify_per: str
    aliases: dict[str, str]
    hmcts_sdp_networking: dict[str, Any]
    iam: dict[str, Any]                           # the [iam] table: see ap_build/workflow/iam.py


def load_settings(path: Path | None = None) -> Settings:
    """The platform's defaults (defaults.toml) overlaid with a user's config file."""
    values = tomllib.loads((Path(__file__).parent / "defaults.toml").read_text())
    if path is not None:
        try:
            user = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"{path}: {exc}", hint="pass a TOML file with the keys of workflow/defaults.toml") from exc
        unknown = set(user) - set(values)
        if unknown:
            raise UsageError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}",
                             hint=f"known: {', '.join(sorted(values))}")
        values.update(user)
    if values["airflow"] not in (2, 3) or values["notify_per"] not in ("task", "dag"):
        raise UsageError("settings: airflow must be 2 or 3 and notify_per 'task' or 'dag'")
    return Settings(**values)


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
