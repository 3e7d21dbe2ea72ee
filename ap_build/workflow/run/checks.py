"""Everything that can stop `workflow run`, checked before any container starts: the manifest, params,
secrets, credentials, Airflow, the engine, the image and the image's user."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ap_build.errors import EngineError, ToolError, UsageError
from ap_build.workflow import codegen, model
from ap_build.workflow.run import inputs, localdag, pods
from ap_build.workflow.run.mask import Masker
from ap_build.workflow.settings import identify, load_settings
from ap_build.workflow.validate import Problem, validate_file

AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CREDENTIAL_EXPIRATION")


@dataclasses.dataclass
class RunOptions:
    manifest: Path
    image: str | None = None
    secrets: Path | None = None
    params: list[str] = dataclasses.field(default_factory=list)
    task: str | None = None
    with_upstream: bool = False
    logical_date: str | None = None
    aws_profile: str | None = None
    aws_env: bool = False
    keep: bool = False
    config: Path | None = None
    environment: str | None = None
    project: str | None = None
    workflow: str | None = None
    server: bool = True  # through the warm run server (client.py, server.py) when it can


class InvalidManifest(UsageError):
    """The manifest does not validate: nothing can run (exit 2); the problems are listed."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"the manifest is invalid ({len(problems)} problem(s))",
                         hint="fix them (ap-build workflow validate) and run again")
        self.problems = problems


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
        proc = subprocess.run([aws, "configure", "export-credentials", "--profile", profile, "--format", "process"],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise UsageError(f"--aws-profile {profile}: the AWS CLI could not resolve credentials",
                             hint=(proc.stderr.strip().splitlines() or ["run `aws sso login`?"])[-1][:200])
        data = json.loads(proc.stdout)
        creds.update({"AWS_ACCESS_KEY_ID": data["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": data["SecretAccessKey"]})
        if data.get("SessionToken"):
            creds["AWS_SESSION_TOKEN"] = data["SessionToken"]
    return creds


@dataclasses.dataclass
class Checked:
    """Everything checked before anything runs."""

    ident: Any
    settings: Any
    manifest: model.Manifest
    logical_date: dt.datetime
    conf: dict[str, str]
    secrets: dict[str, str]
    extra_env: dict[str, str]
    mask: Masker
    airflow: str
    engine: Any
    image: str
    user_problem: str | None


def preflight(opts: RunOptions) -> Checked:
    """The manifest, params, secrets, credentials, Airflow, the engine and the image: each problem is an
    error before any container starts (exit 2)."""
    from ap_build.engine import Engine

    ident = identify(opts.manifest, opts.environment, opts.project, opts.workflow)
    settings = load_settings(opts.config)
    checked = validate_file(opts.manifest, ident)
    if checked.problems or checked.manifest is None:
        raise InvalidManifest(checked.problems)
    m = checked.manifest
    if m.dag.python_dag:
        raise UsageError(f"{opts.manifest}: python_dag: true (a DAG file of your own) cannot be run by ap-build",
                         hint="run your dag.py with Airflow's `dag.test()`")
    if opts.with_upstream and opts.task is None:
        raise UsageError("--with-upstream needs --task NAME", hint="e.g. --task load --with-upstream")
    if opts.task is not None:
        inputs.check_task(opts.task, list(m.dag.tasks) if m.dag.tasks is not None else ["main"])
    logical_date = inputs.parse_logical_date(opts.logical_date, m.dag.start_date, m.dag.end_date)
    conf = inputs.parse_params(opts.params, {k: codegen.as_text(v) for k, v in m.dag.params.items()})
    secrets = inputs.secret_values(list(m.secrets), opts.secrets)
    extra_env = aws_credentials(opts.aws_profile, opts.aws_env)
    version = localdag.airflow_version()
    engine = Engine.connect()
    image = opts.image or codegen.image(m, settings)
    try:
        inspected = engine.inspect(image)  # one engine call on the usual path
    except EngineError:
        if engine.image_exists(image):  # it is there: the engine failed otherwise
            raise
        how = ("build it (`ap-build image build`, or `docker build -t TAG .` in the repository) and pass "
               "--image TAG" if opts.image is None else f"build it or `docker pull {image}`")
        raise EngineError(f"image {image} is not in the engine", hint=f"{how}; the platform's registry "
                          f"image can be fetched with `docker pull {codegen.image(m, settings)}` where reachable"
                          ) from None
    user_problem = pods.image_user_problem(str(inspected["Config"].get("User") or ""))
    return Checked(ident, settings, m, logical_date, conf, secrets, extra_env,
                   Masker(mask_values(secrets, extra_env)), version, engine, image, user_problem)


def mask_values(secrets: dict[str, str], extra_env: dict[str, str]) -> list[str]:
    return [*secrets.values(), *(v for k, v in extra_env.items() if k != "AWS_CREDENTIAL_EXPIRATION")]
