"""What a task's container gets locally, derived from the pod the compiled DAG builds (pure).

`workflow run` never re-derives a task's settings from the manifest: it compiles the manifest,
builds each KubernetesPodOperator's pod (`build_pod_request_obj()`) and translates that pod into
the settings of one container on the Docker Engine API: image, env (still templated: Airflow
renders it at run time), secrets, CPU/memory limits, host aliases, GPU, user, workdir, command and
the security context. Also here: the run's inputs (`--param`, `--logical-date`, the `--secrets` dotenv file) and
the masking of secret values in everything ap-build prints.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ap_build.errors import UsageError

RUN_LABEL = "ap-build.run"
TASK_LABEL = "ap-build.task"
GPU_RESOURCE = "nvidia.com/gpu"
MASK = "***"


@dataclass(frozen=True)
class ContainerSpec:
    """One task's container: everything the pod gives it, as Docker Engine API settings."""

    task_id: str
    pod_name: str
    image: str
    env: dict[str, str]  # plain values, Jinja templates included (Airflow renders them)
    secret_env: dict[str, str]  # env var -> the secret's Kubernetes name (its value comes from --secrets)
    upstream: tuple[str, ...] = ()
    nano_cpus: int | None = None
    mem_bytes: int | None = None
    gpu: bool = False
    extra_hosts: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    working_dir: str | None = None
    entrypoint: list[str] | None = None
    command: list[str] | None = None
    cap_drop: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()
    no_new_privileges: bool = False
    privileged: bool = False
    run_as_non_root: bool = False
    labels: dict[str, str] = field(default_factory=dict)


def _quantity(value: Any) -> float:
    from kubernetes.utils.quantity import parse_quantity  # the Kubernetes client's own parser

    return float(parse_quantity(value))


def container_from_pod(task_id: str, pod: Any, upstream: Iterable[str] = ()) -> ContainerSpec:
    """The container settings of a `kubernetes.client.V1Pod` (the compiled task's pod)."""
    spec = pod.spec
    (main,) = [c for c in spec.containers if c.name == "base"] or spec.containers[:1]
    env: dict[str, str] = {}
    secret_env: dict[str, str] = {}
    for var in main.env or []:
        ref = var.value_from.secret_key_ref if var.value_from is not None else None
        if ref is not None:
            secret_env[var.name] = ref.name
        elif var.value_from is None:
            env[var.name] = "" if var.value is None else str(var.value)
    limits = (main.resources.limits if main.resources is not None else None) or {}
    pod_sc, sc = spec.security_context, main.security_context
    caps = sc.capabilities if sc is not None else None

    def pick(attr: str) -> Any:  # container security context first, then the pod's (as Kubernetes does)
        for ctx in (sc, pod_sc):
            if ctx is not None and getattr(ctx, attr, None) is not None:
                return getattr(ctx, attr)
        return None

    run_as_user, run_as_group = pick("run_as_user"), pick("run_as_group")
    user = None if run_as_user is None else str(run_as_user) + (f":{run_as_group}" if run_as_group is not None else "")
    hosts = {name: alias.ip for alias in spec.host_aliases or [] for name in alias.hostnames or []}
    return ContainerSpec(
        task_id=task_id,
        pod_name=pod.metadata.name or task_id,
        image=main.image,
        env=env,
        secret_env=secret_env,
        upstream=tuple(sorted(upstream)),
        nano_cpus=int(_quantity(limits["cpu"]) * 1e9) if "cpu" in limits else None,
        mem_bytes=int(_quantity(limits["memory"])) if "memory" in limits else None,
        gpu=GPU_RESOURCE in limits,
        extra_hosts=hosts,
        user=user,
        working_dir=main.working_dir,
        entrypoint=list(main.command) if main.command else None,
        command=list(main.args) if main.args else None,
        cap_drop=tuple(caps.drop or ()) if caps is not None else (),
        cap_add=tuple(caps.add or ()) if caps is not None else (),
        no_new_privileges=pick("allow_privilege_escalation") is False,
        privileged=bool(pick("privileged")),
        run_as_non_root=bool(pick("run_as_non_root")),
        labels=dict(pod.metadata.labels or {}),
    )


def fit_to_engine(spec: ContainerSpec, ncpu: int | None, mem_total: int | None) -> ContainerSpec:
    """Limits above what the engine has cannot be set (Docker refuses --cpus > cores) and are no limit
    there anyway: cap them at the engine's CPUs and memory."""
    nano = spec.nano_cpus if not (ncpu and spec.nano_cpus) else min(spec.nano_cpus, ncpu * 10**9)
    mem = spec.mem_bytes if not (mem_total and spec.mem_bytes) else min(spec.mem_bytes, mem_total)
    return replace(spec, nano_cpus=nano, mem_bytes=mem)


def env_name(secret: str) -> str:
    """The env var a manifest secret becomes on the pod (`api-key` -> `SECRET_API_KEY`)."""
    return "SECRET_" + secret.upper().replace("-", "_")


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


def select_tasks(specs: list[ContainerSpec], name: str | None, with_upstream: bool) -> list[ContainerSpec]:
    """`--task NAME` (and its ancestors with `--with-upstream`), in the given order."""
    if name is None:
        return specs
    by_id = {s.task_id: s for s in specs}
    check_task(name, list(by_id))
    keep, todo = {name}, [name]
    while with_upstream and todo:
        for up in by_id[todo.pop()].upstream:
            if up not in keep:
                keep.add(up)
                todo.append(up)
    return [replace(s, upstream=tuple(u for u in s.upstream if u in keep)) for s in specs if s.task_id in keep]


def check_task(name: str, tasks: list[str]) -> None:
    """`--task NAME` must name a task of the manifest (`main` for a single-task one)."""
    if name not in tasks:
        close = difflib.get_close_matches(name, tasks, n=1)
        raise UsageError(f"--task {name}: no such task", hint=f"did you mean `{close[0]}`?" if close else
                         f"tasks: {', '.join(tasks)}")


class Masker:
    """Replaces every secret value in text (longest first, so a value containing another goes whole)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        parts = {line for value in secrets for line in [value, *value.splitlines()] if line.strip()}
        ordered = sorted(parts, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text


def image_user_problem(user: str) -> str | None:
    """Why Kubernetes' runAsNonRoot refuses an image's USER (None when it runs it)."""
    name = user.split(":", 1)[0]
    if name in ("", "root", "0"):
        return f"runs as root (USER {user or 'unset'})"
    if not name.isdigit():
        return f"has a non-numeric USER {user!r}, which Kubernetes cannot verify is non-root"
    return None
