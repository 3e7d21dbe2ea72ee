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

import yaml

from ap_build.workflow import model, notifications
from ap_build.workflow.settings import Identity, Settings

LABEL = "airflow.compute.analytical-platform.service.justice.gov.uk"
POOL_KEY = "compute.analytical-platform.service.justice.gov.uk/karpenter-node-pool"
WIDTH = 100
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
        kind, capacity, size = split_profile(task.compute_profile or d.compute_profile)
        cpu, memory = model.SIZES[size]
        pod = pod_name(base if single else f"{base}-{name}")
        env = {**dag_env, **{k: as_text(v) for k, v in task.env_vars.items()}, **params}
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


_SCALARS = frozenset({str, bool, int, type(None)})  # exact types: a subclass may have its own repr


def _plain(value: Any) -> bool:
    t = type(value)
    if t in _SCALARS:
        return True
    if t is list:
        return all(type(v) in _SCALARS or _plain(v) for v in value)
    if t is dict:
        return all(type(k) is str and (type(v) in _SCALARS or _plain(v)) for k, v in value.items())
    return False


def _r(value: Any, indent: int = 0) -> str:
    """A Python literal: `repr` of plain str/int/bool/None/list/dict values is one by construction.
    Containers that do not fit on the line are laid out one item per line at `indent`."""
    if type(value) in _SCALARS:
        return repr(value)
    if not _plain(value):  # anything else is a bug in this module, not a manifest problem
        raise TypeError(f"not a plain value: {type(value).__name__}")
    text = repr(value)
    if indent + len(text) <= WIDTH or not value:
        return text
    pad = " " * indent
    if type(value) is dict:
        items = "".join(f"{pad}    {k!r}: {_r(v, indent + 4)},\n" for k, v in value.items())
        return f"{{\n{items}{pad}}}"
    items = "".join(f"{pad}    {_r(v, indent + 4)},\n" for v in value)
    return f"[\n{items}{pad}]"


def _date(value: dt.date) -> str:
    return f"datetime.datetime({value.year}, {value.month}, {value.day}, tzinfo=datetime.timezone.utc)"


def _schedule(m: model.Manifest, af3: bool) -> tuple[str, str | None]:
    """The DAG's `schedule` argument and the airflow.sdk name it needs. On the Airflow 3 line a cron or
    a timedelta is wrapped in the data-interval timetable Airflow 2 (the platform) uses for it, so runs,
    logical dates and `{{ ts }}` stay what they are today (Airflow 3 would make them trigger timetables)."""
    s = m.dag.schedule
    if s is None or (isinstance(s, str) and s.strip() in ("", "None")):
        return "None", None
    if isinstance(s, str):
        if af3 and s.strip() not in ("@once", "@continuous"):
            return f"CronDataIntervalTimetable({_r(s.strip())}, timezone='UTC')", "CronDataIntervalTimetable"
        return _r(s.strip()), None
    if s.datasets is not None:
        asset = "Asset" if af3 else "Dataset"
        return "[" + ", ".join(f"{asset}({_r(asset_uri(u))})" for u in s.datasets) + "]", None
    unit = next(k for k in ("seconds", "minutes", "hours") if getattr(s, k) is not None)
    delta = f"datetime.timedelta({unit}={int(getattr(s, unit))})"
    return (f"DeltaDataIntervalTimetable({delta})", "DeltaDataIntervalTimetable") if af3 else (delta, None)


def _uses_assets(m: model.Manifest, plans: list[TaskPlan]) -> bool:
    return any(t.inlets or t.outlets for t in plans) or (
        isinstance(m.dag.schedule, model.ScheduleMap) and m.dag.schedule.datasets is not None)


def _imports(m: model.Manifest, settings: Settings, plans: list[TaskPlan], extra: list[str]) -> list[str]:
    """The file's docstring and imports: Airflow 2.10 (`airflow`, Datasets) or the Airflow 3 SDK (Assets)."""
    assets = _uses_assets(m, plans)
    if settings.airflow == 3:
        timetable = _schedule(m, True)[1]
        names = ["DAG", *(["Asset"] if assets else []), *([timetable] if timetable else [])]
        airflow = [f"from airflow.sdk import {', '.join(names)}"]
    else:
        airflow = ["from airflow import DAG", *(["from airflow.datasets import Dataset"] if assets else [])]
    return [
        '"""Generated by `ap-build workflow compile`: do not edit; edit the manifest and compile again."""',
        "",
        "from __future__ import annotations",
        "",
        "import datetime",
        "import functools",
        "",
        *airflow,
        "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator",
        *(["from airflow.providers.cncf.kubernetes.secret import Secret"] if m.secrets else []),
        *extra,
        "from kubernetes.client import Configuration",
        "from kubernetes.client import models as k8s",
        "",
    ]


def _constants(m: model.Manifest, ident: Identity, settings: Settings, source: str) -> list[str]:
    """Values shared by every task: image, cluster access, secrets, labels, security contexts."""
    project = ident.name(settings)
    return [
        f"MANIFEST = {_r(source)}",
        f"IMAGE = {_r(image(m, settings))}",
        f"KUBE_CONFIG_FILE = {_r(settings.kube_config_file or None)}",
        "# A Kubernetes client object made without a configuration copies the client's, which costs more than",
        "# the rest of the object (it resets the client's loggers, clearing every logger's cache): they share one.",
        "CLIENT = Configuration.get_default_copy()",
        "SECRETS = [",
        *(f"    Secret('env', {_r('SECRET_' + s.upper().replace('-', '_'))}, "
          f"{_r(f'{project}-{ident.workflow}-{s}')}, 'data')," for s in m.secrets),
        "]",
        "LABELS = " + _r({f"{LABEL}/environment": ident.environment, f"{LABEL}/project": project,
                          f"{LABEL}/workflow": ident.workflow}, 0),
        "SECCOMP = k8s.V1SeccompProfile(type='RuntimeDefault', local_vars_configuration=CLIENT)",
        "POD_SECURITY_CONTEXT = k8s.V1PodSecurityContext(",
        "    run_as_non_root=True, seccomp_profile=SECCOMP, local_vars_configuration=CLIENT,",
        ")",
        "CONTAINER_SECURITY_CONTEXT = k8s.V1SecurityContext(",
        "    allow_privilege_escalation=False, privileged=False, run_as_non_root=True, seccomp_profile=SECCOMP,",
        "    capabilities=k8s.V1Capabilities(drop=['ALL'], local_vars_configuration=CLIENT),",
        "    local_vars_configuration=CLIENT,",
        ")",
    ]


def _pod_args(ident: Identity, settings: Settings) -> list[str]:
    """The platform's operator settings: the same for every task of a DAG, so written once."""
    return [
        "# The platform's KubernetesPodOperator settings, the same for every task (`**POD_ARGS`).",
        "POD_ARGS = dict(",
        "    config_file=KUBE_CONFIG_FILE,",
        f"    in_cluster={_r(settings.kube_in_cluster)},",
        f"    namespace={_r(settings.namespace)},",
        "    get_logs=True,",
        "    startup_timeout_seconds=600,",
        "    on_finish_action='delete_pod',",
        "    log_pod_spec_on_failure=True,",
        f"    service_account_name={_r(f'{ident.name(settings)}-{ident.workflow}')},",
        "    image=IMAGE,",
        "    image_pull_policy='Always',",
        "    labels=LABELS,",
        "    container_security_context=CONTAINER_SECURITY_CONTEXT,",
        "    security_context=POD_SECURITY_CONTEXT,",
        "    secrets=SECRETS,",
        ")",
    ]


def _annotations(settings: Settings, plans: list[TaskPlan]) -> list[str]:
    lines = ["ANNOTATIONS = {'karpenter.sh/do-not-disrupt': 'true'}"]
    if any(t.hmcts for t in plans):
        extra = _r(settings.hmcts_sdp_networking.get("annotations", {}), 0)
        lines.append(f"HMCTS_ANNOTATIONS = {{**ANNOTATIONS, {extra[1:]}" if len(extra) > 2 else
                     "HMCTS_ANNOTATIONS = ANNOTATIONS")
    return lines


def _common_env(plans: list[TaskPlan]) -> dict[str, str]:
    """The env vars every task's pod starts with, in order: `{**ENV, **rest}` rebuilds each task's env
    exactly (the rest follow the common ones and, a dict's keys being unique, never repeat one)."""
    if not plans:
        return {}
    common = list(plans[0].env.items())
    for t in plans[1:]:
        n = 0
        for a, b in zip(common, t.env.items(), strict=False):
            if a != b:
                break
            n += 1
        del common[n:]
    return dict(common)


def _env_arg(env: dict[str, str], common: int, af3: bool) -> str:
    """A task's `env_vars`: the common ENV and its own after them. The Airflow 3 line's provider keeps a
    dict as it is until the pod is built; Airflow 2's converts it at once, making each V1EnvVar without
    a configuration (see CLIENT), so there the file builds them (`env`)."""
    rest = dict(list(env.items())[common:]) if common else env
    if not rest:
        return "dict(ENV)" if af3 else "env(ENV)"
    text = _r(rest, 8)
    merged = f"{{**ENV, {text[1:]}" if text[1] != "\n" else f"{{\n            **ENV,{text[1:]}"
    return merged if af3 else f"env({merged})"


_ENV_BUILDER = [
    "",
    "",
    "def env(values: dict[str, str]) -> list[k8s.V1EnvVar]:",
    "    return [k8s.V1EnvVar(name=k, value=v, local_vars_configuration=CLIENT) for k, v in values.items()]",
]
_BUILDERS = [
    "",
    "",
    "# Kubernetes client objects are slow to construct: build each distinct one once per file.",
    "@functools.cache",
    "def affinity(pool: str) -> k8s.V1Affinity:",
    "    term = k8s.V1NodeSelectorTerm(match_expressions=[k8s.V1NodeSelectorRequirement(",
    f"        key={POOL_KEY!r}, operator='In', values=[pool], local_vars_configuration=CLIENT,",
    "    )], local_vars_configuration=CLIENT)",
    "    selector = k8s.V1NodeSelector(node_selector_terms=[term], local_vars_configuration=CLIENT)",
    "    return k8s.V1Affinity(node_affinity=k8s.V1NodeAffinity(",
    "        required_during_scheduling_ignored_during_execution=selector, local_vars_configuration=CLIENT,",
    "    ), local_vars_configuration=CLIENT)",
    "",
    "",
    "@functools.cache",
    "def tolerations(pool: str) -> list[k8s.V1Toleration]:",
    "    return [k8s.V1Toleration(",
    f"        key={POOL_KEY!r}, operator='Equal', value=pool, effect='NoSchedule',",
    "        local_vars_configuration=CLIENT,",
    "    )]",
    "",
    "",
    "@functools.cache",
    "def resources(cpu: str, memory: str, gpu: bool) -> k8s.V1ResourceRequirements:",
    "    requests = {'cpu': cpu, 'memory': memory}",
    "    limits = {**requests, 'nvidia.com/gpu': '1'} if gpu else dict(requests)",
    "    return k8s.V1ResourceRequirements(requests=requests, limits=limits, local_vars_configuration=CLIENT)",
    "",
    "",
]


def _host_aliases(settings: Settings) -> list[str]:
    aliases = settings.hmcts_sdp_networking.get("host_aliases", [])
    return ["HMCTS_HOST_ALIASES = [",
            *(f"    k8s.V1HostAlias(ip={_r(h['ip'])}, hostnames={_r(list(h['hostnames']))}, "
              "local_vars_configuration=CLIENT)," for h in aliases),
            "]"]


def _callbacks(events: dict[str, list[str]], indent: str, quote: bool) -> list[str]:
    key = (lambda e: f"'on_{e}_callback': ") if quote else (lambda e: f"on_{e}_callback=")
    return [f"{indent}{key(e)}[{', '.join(names)}]," for e, names in sorted(events.items())]


def _default_args(m: model.Manifest, notes: notifications.Notifications, af3: bool) -> list[str]:
    d = m.dag
    lines = [
        "DEFAULT_ARGS = {",
        f"    'owner': {_r(m.tags.owner)},",
        f"    'depends_on_past': {_r(d.depends_on_past)},",
        # Airflow 2's default (the first run does not wait for a previous one); Airflow 3's is False
        *(["    'ignore_first_depends_on_past': True,"] if af3 else []),
        f"    'retries': {_r(d.retries)},",
        f"    'start_date': {_date(d.start_date)},",
    ]
    if d.retries > 0:
        lines.append(f"    'retry_delay': datetime.timedelta(seconds={int(d.retry_delay)}),")
    if d.end_date:
        lines.append(f"    'end_date': {_date(d.end_date)},")
    if notes.email:
        lines.append(f"    'email': {_r(notes.email, 4)},")
    return [*lines, *_callbacks(notes.task_callbacks, "    ", quote=True), "}", ""]


def _dag_open(m: model.Manifest, ident: Identity, settings: Settings,
              notes: notifications.Notifications) -> list[str]:
    d = m.dag
    project = ident.name(settings)
    return [
        "with DAG(",
        f"    dag_id={_r(f'{project}.{ident.workflow}')},",
        f"    schedule={_schedule(m, settings.airflow == 3)[0]},",
        f"    catchup={_r(d.catchup)},",
        f"    is_paused_upon_creation={_r(d.is_paused_upon_creation)},",
        f"    max_active_runs={_r(d.max_active_runs)},",
        f"    params={_r({k: as_text(v) for k, v in d.params.items()}, 4)},",
        "    default_args=DEFAULT_ARGS,",
        f"    tags={_r([ident.environment, project])},",
        *_callbacks(notes.dag_callbacks, "    ", quote=False),
        ") as dag:",
    ]


def _task(i: int, t: TaskPlan, env: str, settings: Settings) -> list[str]:
    """One KubernetesPodOperator: what is its own, then the DAG's shared settings (POD_ARGS)."""
    asset = "Asset" if settings.airflow == 3 else "Dataset"
    lines = [
        f"    task_{i} = KubernetesPodOperator(",
        f"        task_id={_r(t.task_id)},",
        f"        name={_r(t.pod_name)},",
        f"        annotations={'HMCTS_ANNOTATIONS' if t.hmcts else 'ANNOTATIONS'},",
        f"        env_vars={env},",
        *(["        host_aliases=HMCTS_HOST_ALIASES,"] if t.hmcts else []),
        f"        affinity=affinity({_r(t.pool)}),",
        f"        container_resources=resources({_r(str(t.cpu))}, {_r(f'{t.memory_gb}Gi')}, {_r(t.gpu)}),",
        f"        tolerations=tolerations({_r(t.pool)}),",
    ]
    if t.inlets:
        lines.append(f"        inlets=[{', '.join(f'{asset}({_r(u)})' for u in t.inlets)}],")
    if t.outlets:
        lines.append(f"        outlets=[{', '.join(f'{asset}({_r(u)})' for u in t.outlets)}],")
    return [*lines, "        **POD_ARGS,", "    )"]


def _edges(plans: list[TaskPlan]) -> list[str]:
    index = {t.task_id: i for i, t in enumerate(plans)}
    edges = [f"    task_{index[u]} >> task_{i}" for i, t in enumerate(plans) for u in t.upstream]
    return ["", *edges] if edges else []


def render_dag(m: model.Manifest, ident: Identity, settings: Settings, source: str = "workflow.yml") -> str:
    """The DAG file's Python source."""
    plans = plan_tasks(m, ident, settings)
    notes = notifications.plan(m, ident, settings, _r)
    af3 = settings.airflow == 3
    common = _common_env(plans)
    lines = [
        *_imports(m, settings, plans, notes.imports),
        *_constants(m, ident, settings, source),
        *(_host_aliases(settings) if any(t.hmcts for t in plans) else []),
        *_annotations(settings, plans),
        *_pod_args(ident, settings),
        "# The env vars every task starts with; a task's own follow them.",
        f"ENV = {_r(common, 0)}",
        *notes.constants,
        *([] if af3 else _ENV_BUILDER),
        *_BUILDERS,
        *_default_args(m, notes, af3),
        *_dag_open(m, ident, settings, notes),
    ]
    for i, t in enumerate(plans):
        lines += _task(i, t, _env_arg(t.env, len(common), af3), settings)
    lines += _edges(plans)
    return "\n".join(lines) + "\n"
