"""Manifest -> a static Airflow DAG file (pure).

Every value from the manifest reaches the file as a Python literal (`repr` of plain str/int/bool/
list/dict values), never as pasted text, so no manifest can inject code or change the structure.
The file imports only Airflow, the cncf.kubernetes provider and the Kubernetes client, and the same
input always gives byte-identical output. Values stay literal: unlike dag-factory, nothing expands
`$VAR` from the scheduler's environment at parse time.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from ap_build.workflow import model
from ap_build.workflow.settings import Identity, Settings

LABEL = "airflow.compute.analytical-platform.service.justice.gov.uk"
POOL_KEY = "compute.analytical-platform.service.justice.gov.uk/karpenter-node-pool"
WIDTH = 100
_NOT_NAME = re.compile(r"[^a-z0-9-]+")


def as_text(value: Any) -> str:
    """Env var and param values are strings (YAML booleans as True/False, as upstream)."""
    return value if isinstance(value, str) else str(value)


def asset_uri(uri: str) -> str:
    return uri[:-1] if uri.endswith("/") and len(uri) > 1 else uri


@dataclass(frozen=True)
class TaskPlan:
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
    project = ident.name(settings)
    base = f"{project}-{ident.workflow}"
    region = settings.aws_region
    defaults = {
        "AWS_DEFAULT_REGION": region, "AWS_ATHENA_QUERY_EXTRACT_REGION": region, "AWS_DEFAULT_EXTRACT_REGION": region,
        "AWS_METADATA_SERVICE_TIMEOUT": "60", "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "5",
        "AIRFLOW_ENVIRONMENT": ident.environment.upper(),
        "AIRFLOW_RUN_ID": "{{ run_id }}", "AIRFLOW_TIMESTAMP": "{{ ts }}",
        "AIRFLOW_TIMESTAMP_NO_DASH": "{{ ts_nodash }}", "AIRFLOW_TIMESTAMP_NO_DASH_WITH_TZ": "{{ ts_nodash_with_tz }}",
    }
    params = {f"PARAM_{k.upper()}": "{{ params." + k + " }}" for k in d.params}
    single = d.tasks is None
    tasks = {"main": model.Task(inlets=d.inlets, outlets=d.outlets)} if single else dict(d.tasks or {})
    plans = []
    for name, task in tasks.items():
        kind, capacity, size = split_profile(task.compute_profile or d.compute_profile)
        cpu, memory = model.SIZES[size]
        pod = pod_name(base if single else f"{base}-{name}")
        env = {**defaults, **{k: as_text(v) for k, v in d.env_vars.items()},
               **{k: as_text(v) for k, v in task.env_vars.items()}, **params}
        plans.append(TaskPlan(
            task_id=name, pod_name=pod, pool=f"{kind}-{capacity}", cpu=cpu, memory_gb=memory, gpu=kind == "gpu",
            hmcts=task.hmcts_sdp_networking if task.hmcts_sdp_networking is not None else d.hmcts_sdp_networking,
            env=env, inlets=[asset_uri(u) for u in task.inlets], outlets=[asset_uri(u) for u in task.outlets],
            upstream=list(task.dependencies),
        ))
    return plans


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
    return f"{settings.registry}/{m.dag.repository.lower().replace('_', '-')}:{m.dag.tag}"


_PLAIN = (str, bool, int, type(None))


def _plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _r(value: Any, indent: int = 0) -> str:
    """A Python literal: `repr` of plain str/int/bool/None/list/dict values is one by construction.
    Containers that do not fit on the line are laid out one item per line at `indent`."""
    if not _plain(value):  # anything else is a bug in this module, not a manifest problem
        raise TypeError(f"not a plain value: {type(value).__name__}")
    text = repr(value)
    if indent + len(text) <= WIDTH or not isinstance(value, (dict, list)) or not value:
        return text
    pad = " " * indent
    if isinstance(value, dict):
        items = "".join(f"{pad}    {k!r}: {_r(v, indent + 4)},\n" for k, v in value.items())
        return f"{{\n{items}{pad}}}"
    items = "".join(f"{pad}    {_r(v, indent + 4)},\n" for v in value)
    return f"[\n{items}{pad}]"


def _airflow_imports(af3: bool, uses_assets: bool) -> list[str]:
    if af3:
        return ["from airflow.sdk import DAG, Asset" if uses_assets else "from airflow.sdk import DAG"]
    return ["from airflow import DAG", *(["from airflow.datasets import Dataset"] if uses_assets else [])]  # 2.10


def _date(value: dt.date) -> str:
    return f"datetime.datetime({value.year}, {value.month}, {value.day}, tzinfo=datetime.timezone.utc)"


def _schedule(m: model.Manifest, asset: str) -> str:
    s = m.dag.schedule
    if s is None or (isinstance(s, str) and s.strip() in ("", "None")):
        return "None"
    if isinstance(s, str):
        return _r(s.strip())
    if s.datasets is not None:
        return "[" + ", ".join(f"{asset}({_r(asset_uri(u))})" for u in s.datasets) + "]"
    unit = next(k for k in ("seconds", "minutes", "hours") if getattr(s, k) is not None)
    return f"datetime.timedelta({unit}={int(getattr(s, unit))})"


def render_dag(m: model.Manifest, ident: Identity, settings: Settings, source: str = "workflow.yml") -> str:
    """The DAG file's Python source."""
    d = m.dag
    af3 = settings.airflow == 3
    asset = "Asset" if af3 else "Dataset"
    project = ident.name(settings)
    plans = plan_tasks(m, ident, settings)
    n = m.notifications
    slack_events = sorted(set(n.slack_events)) if n.slack_channel else []
    per_dag = settings.notify_per == "dag"
    default_args: list[str] = [
        f"    'owner': {_r(m.tags.owner)},",
        f"    'depends_on_past': {_r(d.depends_on_past)},",
        f"    'retries': {_r(d.retries)},",
        f"    'start_date': {_date(d.start_date)},",
    ]
    if d.retries > 0:
        default_args.append(f"    'retry_delay': datetime.timedelta(seconds={int(d.retry_delay)}),")
    if d.end_date:
        default_args.append(f"    'end_date': {_date(d.end_date)},")
    if n.emails:
        default_args.append(f"    'email': {_r(list(n.emails), 4)},")
    if slack_events and not per_dag:
        for event in slack_events:
            default_args.append(f"    'on_{event}_callback': _notify_{event},")

    lines: list[str] = [
        '"""Generated by `ap-build workflow compile`: do not edit; edit the manifest and compile again."""',
        "",
        "from __future__ import annotations",
        "",
        "import datetime",
        "import functools",
        "",
        "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator",
        *(["from airflow.providers.cncf.kubernetes.secret import Secret"] if m.secrets else []),
        *_airflow_imports(af3, uses_assets=any(t.inlets or t.outlets for t in plans)
                          or (isinstance(d.schedule, model.ScheduleMap) and d.schedule.datasets is not None)),
        "from kubernetes.client import models as k8s",
        "",
        f"MANIFEST = {_r(source)}",
        f"ENVIRONMENT = {_r(ident.environment)}",
        f"IMAGE = {_r(image(m, settings))}",
        "",
    ]
    if slack_events:
        lines += _notifier(settings, n.slack_channel or "", ident)
    lines += [
        "SECRETS = [",
        *(f"    Secret('env', {_r('SECRET_' + s.upper().replace('-', '_'))}, "
          f"{_r(f'{project}-{ident.workflow}-{s}')}, 'data')," for s in m.secrets),
        "]",
        "LABELS = " + _r({f"{LABEL}/environment": ident.environment, f"{LABEL}/project": project,
                          f"{LABEL}/workflow": ident.workflow}, 0),
        "POD_SECURITY_CONTEXT = k8s.V1PodSecurityContext(",
        "    run_as_non_root=True, seccomp_profile=k8s.V1SeccompProfile(type='RuntimeDefault')",
        ")",
        "CONTAINER_SECURITY_CONTEXT = k8s.V1SecurityContext(",
        "    allow_privilege_escalation=False, privileged=False, run_as_non_root=True,",
        "    seccomp_profile=k8s.V1SeccompProfile(type='RuntimeDefault'),",
        "    capabilities=k8s.V1Capabilities(drop=['ALL']),",
        ")",
        "",
        "",
        "# Kubernetes client objects are slow to construct: build each distinct one once per file.",
        "@functools.cache",
        "def affinity(pool: str) -> k8s.V1Affinity:",
        "    term = k8s.V1NodeSelectorTerm(match_expressions=[",
        f"        k8s.V1NodeSelectorRequirement(key={_r(POOL_KEY)}, operator='In', values=[pool]),",
        "    ])",
        "    return k8s.V1Affinity(node_affinity=k8s.V1NodeAffinity(",
        "        required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(node_selector_terms=[term])))",
        "",
        "",
        "@functools.cache",
        "def tolerations(pool: str) -> list[k8s.V1Toleration]:",
        f"    return [k8s.V1Toleration(key={_r(POOL_KEY)}, operator='Equal', value=pool, effect='NoSchedule')]",
        "",
        "",
        "@functools.cache",
        "def resources(cpu: str, memory: str, gpu: bool) -> k8s.V1ResourceRequirements:",
        "    requests = {'cpu': cpu, 'memory': memory}",
        "    limits = {**requests, 'nvidia.com/gpu': '1'} if gpu else dict(requests)",
        "    return k8s.V1ResourceRequirements(requests=requests, limits=limits)",
        "",
        "",
        "DEFAULT_ARGS = {",
        *default_args,
        "}",
        "",
        "with DAG(",
        f"    dag_id={_r(f'{project}.{ident.workflow}')},",
        f"    schedule={_schedule(m, asset)},",
        f"    catchup={_r(d.catchup)},",
        f"    is_paused_upon_creation={_r(d.is_paused_upon_creation)},",
        f"    max_active_runs={_r(d.max_active_runs)},",
        f"    params={_r({k: as_text(v) for k, v in d.params.items()}, 4)},",
        "    default_args=DEFAULT_ARGS,",
        f"    tags={_r([ident.environment, project])},",
    ]
    if slack_events and per_dag:
        lines += [f"    on_{event}_callback=_notify_{event}," for event in slack_events]
    lines += [") as dag:"]
    for i, t in enumerate(plans):
        annotations = {"karpenter.sh/do-not-disrupt": "true"}
        host_aliases = []
        if t.hmcts:
            annotations.update(settings.hmcts_sdp_networking.get("annotations", {}))
            host_aliases = settings.hmcts_sdp_networking.get("host_aliases", [])
        lines += [
            f"    task_{i} = KubernetesPodOperator(",
            f"        task_id={_r(t.task_id)},",
            f"        name={_r(t.pod_name)},",
            "        image=IMAGE,",
            "        image_pull_policy='Always',",
            f"        namespace={_r(settings.namespace)},",
            f"        service_account_name={_r(f'{project}-{ident.workflow}')},",
            "        labels=LABELS,",
            f"        annotations={_r(annotations, 8)},",
            f"        affinity=affinity({_r(t.pool)}),",
            f"        tolerations=tolerations({_r(t.pool)}),",
            f"        container_resources=resources({_r(str(t.cpu))}, {_r(f'{t.memory_gb}Gi')}, {_r(t.gpu)}),",
            "        security_context=POD_SECURITY_CONTEXT,",
            "        container_security_context=CONTAINER_SECURITY_CONTEXT,",
            f"        env_vars={_r(t.env, 8)},",
            "        secrets=SECRETS,",
        ]
        if host_aliases:
            aliases = [f"k8s.V1HostAlias(ip={_r(h['ip'])}, hostnames={_r(list(h['hostnames']))})" for h in host_aliases]
            lines.append(f"        host_aliases=[{', '.join(aliases)}],")
        if t.inlets:
            lines.append(f"        inlets=[{', '.join(f'{asset}({_r(u)})' for u in t.inlets)}],")
        if t.outlets:
            lines.append(f"        outlets=[{', '.join(f'{asset}({_r(u)})' for u in t.outlets)}],")
        lines += [
            "        get_logs=True,",
            "        on_finish_action='delete_pod',",
            "        log_pod_spec_on_failure=True,",
            "        startup_timeout_seconds=600,",
            "    )",
        ]
    index = {t.task_id: i for i, t in enumerate(plans)}
    edges = [(index[u], i) for i, t in enumerate(plans) for u in t.upstream]
    if edges:
        lines.append("")
        lines += [f"    task_{a} >> task_{b}" for a, b in edges]
    return "\n".join(lines) + "\n"


def _notifier(settings: Settings, channel: str, ident: Identity) -> list[str]:
    """Slack notifications through an Airflow connection holding the webhook URL (stdlib only)."""
    return [
        f"SLACK_CONNECTION = {_r(settings.slack_connection)}",
        f"SLACK_CHANNEL = {_r(channel)}",
        "",
        "",
        "def _notify(context: dict, event: str) -> None:",
        "    import json",
        "    import urllib.request",
        "",
        "    from airflow.hooks.base import BaseHook",
        "",
        "    ti = context.get('task_instance') or context.get('ti')",
        "    dag_id = context['dag'].dag_id",
        "    task_id = getattr(ti, 'task_id', '') if ti is not None else ''",
        "    log_url = getattr(ti, 'log_url', '') if ti is not None else ''",
        "    text = f'[{ENVIRONMENT}] {dag_id} {task_id} {event}: {log_url}'",
        "    webhook = BaseHook.get_connection(SLACK_CONNECTION).password",
        "    body = json.dumps({'channel': SLACK_CHANNEL, 'text': text}).encode()",
        "    request = urllib.request.Request(webhook, data=body, headers={'Content-Type': 'application/json'})",
        "    urllib.request.urlopen(request, timeout=30).close()",
        "",
        "",
        "def _notify_failure(context: dict) -> None:",
        "    _notify(context, 'failed')",
        "",
        "",
        "def _notify_success(context: dict) -> None:",
        "    _notify(context, 'succeeded')",
        "",
        "",
    ]
