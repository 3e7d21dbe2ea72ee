"""Everything that can stop `workflow run`, checked before any container starts: the manifest, params,
secrets, credentials, Airflow, the engine, the image and the image's user. The checked run becomes a Job
(protocol.py): the compiled DAG file and plain values, what the Airflow side runs."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

from ap_build.engine import Engine
from ap_build.errors import EngineError, SourceError, UsageError
from ap_build.workflow import codegen, model
from ap_build.workflow.run import inputs, localdag, pods
from ap_build.workflow.run.protocol import Job
from ap_build.workflow.settings import Identity, Settings, identify, load_settings
from ap_build.workflow.validate import Problem, validate_file


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


@dataclasses.dataclass(frozen=True)
class Checked:
    """Everything checked before anything runs: where the manifest lives, its settings, the manifest, the
    engine, and the run itself as the Airflow side gets it."""

    ident: Identity
    settings: Settings
    manifest: model.Manifest
    engine: Engine
    job: Job
    platform: str = ""  # the image's platform (`linux/amd64`), plus ` (emulated)` where it is not this machine's


def preflight(opts: RunOptions) -> Checked:
    """The manifest, params, secrets, credentials, Airflow, the engine and the image: each problem is an
    error before any container starts (exit 2)."""
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
    extra_env = inputs.aws_credentials(opts.aws_profile, opts.aws_env)
    airflow = localdag.airflow_version()
    engine = Engine.connect()
    registry_image = codegen.image(m, settings)
    how = ("build it (`ap-build image build`, or `docker build -t TAG .` in the repository) and pass --image TAG"
           if opts.image is None else f"build it or `docker pull {opts.image}`")
    image, inspected, platform = host_image(engine, opts.image or registry_image, f"{how}; the platform's registry "
                                            f"image can be fetched with `docker pull {registry_image}` where reachable")
    job = Job(key=uuid.uuid4().hex, source=compiled_source(m, ident, settings, airflow, opts.manifest),
              manifest=str(opts.manifest), start_date=m.dag.start_date, image=image, airflow=airflow,
              engine_host=engine.host, api_version=engine.api.api_version, logical_date=logical_date, conf=conf,
              secrets=secrets, extra_env=extra_env, task=opts.task, with_upstream=opts.with_upstream,
              keep=opts.keep, user_problem=pods.image_user_problem(str(inspected["Config"].get("User") or "")))
    return Checked(ident, settings, m, engine, job, platform)


def host_image(engine: Engine, image: str, missing_hint: str) -> tuple[str, dict[str, Any], str]:
    """The image to run for `image` on this machine's platform (a multi-platform build's or a registry tag's
    own image for it: `platform_images.pick_for_host`), its inspect, and its platform as the run reports it."""
    from ap_build.images.platform_images import host_platform, pick_for_host

    try:
        picked = pick_for_host(engine, image)
    except SourceError as exc:  # not here, and its registry does not give it
        raise EngineError(f"image {image} is not in the engine (pulling it failed: {exc.message[:300]})",
                          hint=missing_hint) from None
    if picked is None:
        raise EngineError(f"image {image} is not in the engine", hint=missing_hint)
    if picked.note:
        from ap_build.ui import info

        info(picked.note)
    have = picked.platform
    platform = str(have or picked.inspected.get("Architecture") or "?")
    return picked.image, picked.inspected, platform + ("" if have == host_platform() else " (emulated)")


def compiled_source(m: model.Manifest, ident: Identity, settings: Settings, airflow: str, path: Path) -> str:
    """The DAG file `workflow compile` writes, for the installed Airflow's line, without notifications (a
    local run never calls Slack or sends email)."""
    quiet = m.model_copy(update={"notifications": model.Notifications()})
    line = min(int(airflow.split(".")[0]), 3)
    return codegen.render_dag(quiet, ident, dataclasses.replace(settings, airflow=line), source=str(path))
