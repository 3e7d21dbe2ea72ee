"""What a task's container gets locally, derived from the pod the compiled DAG builds (pure).

`workflow run` never re-derives a task's settings from the manifest: it compiles the manifest,
builds each KubernetesPodOperator's pod (`build_pod_request_obj()`) and translates that pod into
the settings of one container on the Docker Engine API: image, env (still templated: Airflow
renders it at run time), secrets, CPU/memory limits, host aliases, GPU, user, workdir, command and
the security context.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ap_build.workflow.run.inputs import check_task

RUN_LABEL = "ap-build.run"
TASK_LABEL = "ap-build.task"
GPU_RESOURCE = "nvidia.com/gpu"


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


def image_user_problem(user: str) -> str | None:
    """Why Kubernetes' runAsNonRoot refuses an image's USER (None when it runs it)."""
    name = user.split(":", 1)[0]
    if name in ("", "root", "0"):
        return f"runs as root (USER {user or 'unset'})"
    if not name.isdigit():
        return f"has a non-numeric USER {user!r}, which Kubernetes cannot verify is non-root"
    return None
