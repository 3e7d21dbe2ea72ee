"""Manifest -> what each task's pod gets, as plain values (pure): the platform's env vars, pod names,
compute pools and resources, datasets. codegen writes it as a DAG file; `workflow show` prints it."""

from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple

import yaml

from ap_build import names
from ap_build.workflow import model
from ap_build.workflow.settings import Identity, Settings

_NOT_NAME = re.compile(r"[^a-z0-9-]+")
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def as_text(value: Any) -> str:
    """Env var and param values are strings (YAML booleans as True/False), read as the platform reads
    them: its generator pastes each value between YAML double quotes, so a backslash escape in it is
    decoded (`Account\\ Management` -> `Account Management`). Real pipelines rely on that; a value that
    is not a valid double-quoted scalar (the platform could not deploy it) stays literal."""
    text = value if isinstance(value, str) else str(value)
    if "\\" not in text:
        return text
    try:
        decoded = yaml.load(f'"{text}"', Loader=_YamlLoader)
    except yaml.YAMLError:
        return text
    return decoded if isinstance(decoded, str) else text


def asset_uri(uri: str) -> str:
    return uri[:-1] if uri.endswith("/") and len(uri) > 1 else uri


class TaskPlan(NamedTuple):
    """Everything one KubernetesPodOperator gets (plain values)."""

    task_id: str
    pod_name: str
    pool: str
    cpu: int
    memory_gb: int
    gpu: bool
    hmcts: bool
    env: dict[str, str]
    inlets: list[str]
    outlets: list[str]
    upstream: list[str]


def plan_tasks(m: model.Manifest, ident: Identity, settings: Settings) -> list[TaskPlan]:
    d = m.dag
    base = ident.resource_name(settings)
    region = settings.aws_region
    dag_env = {
        "AWS_DEFAULT_REGION": region, "AWS_ATHENA_QUERY_EXTRACT_REGION": region, "AWS_DEFAULT_EXTRACT_REGION": region,
        "AWS_METADATA_SERVICE_TIMEOUT": "60", "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "5",
        "AIRFLOW_ENVIRONMENT": ident.environment.upper(),
        "AIRFLOW_RUN_ID": "{{ run_id }}", "AIRFLOW_TIMESTAMP": "{{ ts }}",
        "AIRFLOW_TIMESTAMP_NO_DASH": "{{ ts_nodash }}", "AIRFLOW_TIMESTAMP_NO_DASH_WITH_TZ": "{{ ts_nodash_with_tz }}",
        **{k: as_text(v) for k, v in d.env_vars.items()},
    }
    params = {f"PARAM_{k.upper()}": "{{ params." + k + " }}" for k in d.params}
    single = d.tasks is None
    tasks = {"main": model.Task(inlets=d.inlets, outlets=d.outlets)} if single else dict(d.tasks or {})
    plans = []
    for name, task in tasks.items():
        pool, cpu, memory, gpu = _profile(task.compute_profile or d.compute_profile)
        own = {k: as_text(v) for k, v in task.env_vars.items()} if task.env_vars else {}
        plans.append(TaskPlan(
            task_id=name, pod_name=pod_name(base if single else f"{base}-{name}"), pool=pool, cpu=cpu,
            memory_gb=memory, gpu=gpu,
            hmcts=task.hmcts_sdp_networking if task.hmcts_sdp_networking is not None else d.hmcts_sdp_networking,
            env={**dag_env, **own, **params} if own or params else dag_env.copy(),
            inlets=[asset_uri(u) for u in task.inlets] if task.inlets else [],
            outlets=[asset_uri(u) for u in task.outlets] if task.outlets else [],
            upstream=list(task.dependencies),
        ))
    return plans


@functools.cache
def _profile(profile: str) -> tuple[str, int, int, bool]:
    """A compute profile's Karpenter pool, CPUs, memory (GB) and whether it has a GPU."""
    kind, capacity, size = split_profile(profile)
    cpu, memory = model.SIZES[size]
    return f"{kind}-{capacity}", cpu, memory, kind == "gpu"


def pod_name(name: str) -> str:
    """The pod name as the cncf.kubernetes provider makes it: lower-cased, each run of characters
    other than `a-z0-9-` one `-` (`load_sop__snapshots` -> `load-sop-snapshots`)."""
    return _NOT_NAME.sub("-", name.lower())


def split_profile(profile: str) -> tuple[str, str, str]:
    """`gpu-on-demand-4vcpu-16gb` -> ('gpu', 'on-demand', '4vcpu-16gb')."""
    kind, rest = profile.split("-", 1)
    capacity = "on-demand" if rest.startswith("on-demand-") else "spot"
    return kind, capacity, rest[len(capacity) + 1:]


def image(m: model.Manifest, settings: Settings) -> str:
    """The image the workflow's pods run (ap_build/names.py)."""
    return names.image_ref(settings.registry, m.dag.repository, m.dag.tag)
