"""Compile fixture manifests covering every key and load the output with Airflow's own DagBag."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from workflow.helpers import FULL, SINGLE, cli, env_of

pytestmark = pytest.mark.xdist_group("airflow")

USER_DAG = """\
# my own DAG (python_dag: true): the platform replaces its placeholders when it deploys it
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG

with DAG(dag_id="PLACEHOLDER_PROJECT.PLACEHOLDER_WORKFLOW", schedule=None, default_args={"owner": "PLACEHOLDER_OWNER"}):
    KubernetesPodOperator(
        task_id="hello",
        image="509399598587.dkr.ecr.eu-west-2.amazonaws.com/PLACEHOLDER_REPOSITORY_NAME:PLACEHOLDER_REPOSITORY_TAG",
        env_vars={"WHERE": "PLACEHOLDER_ENVIRONMENT"},
    )
"""

POOL_KEY = "compute.analytical-platform.service.justice.gov.uk/karpenter-node-pool"
LABEL = "airflow.compute.analytical-platform.service.justice.gov.uk"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory, dagbag) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("wf")
    for env, project, workflow, text in (
        ("development", "my-project", "my-flow", FULL),
        ("development", "my-project", "single", SINGLE),
        ("development", "my-project", "user-dag", SINGLE.replace("  env_vars:", "  python_dag: true\n  env_vars:")),
    ):
        path = root / "environments" / env / project / workflow / "workflow.yml"
        path.parent.mkdir(parents=True)
        path.write_text(text)
    (root / "environments" / "development" / "my-project" / "user-dag" / "dag.py").write_text(USER_DAG)
    out = root / "dags"
    (root / "af3.toml").write_text("airflow = 3\n")  # the Airflow line installed in the test venv
    proc = cli("workflow", "compile", str(root / "environments"), "-o", str(out), "--json",  # --iam: test_iam.py
               "--config", str(root / "af3.toml"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert len(summary["written"]) == 3 and len(summary["user_dags"]) == 1
    bag = dagbag(out / "development")
    assert bag.import_errors == {}
    return out, bag


def test_every_dag_imports(compiled) -> None:
    _, bag = compiled
    assert set(bag.dags) == {"my-project.my-flow", "my-project.single", "my-project.user-dag"}


def test_tasks_dependencies_and_schedule(compiled) -> None:
    dag = compiled[1].dags["my-project.my-flow"]
    assert {t.task_id for t in dag.tasks} == {"extract", "transform_1", "load"}
    assert dag.get_task("extract").upstream_task_ids == set()
    assert dag.get_task("transform_1").upstream_task_ids == {"extract"}
    assert dag.get_task("load").upstream_task_ids == {"extract", "transform_1"}
    # Airflow 2's data-interval timetable, as the platform's DAGs have on MWAA (Airflow 3 would trigger)
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.expression == "0 7 3-10 * ? *"
    assert (dag.catchup, dag.max_active_runs, dag.is_paused_upon_creation) == (True, 3, True)
    assert {k: p.value if hasattr(p, "value") else p for k, p in dag.params.items()} == \
        {"run_date": "2025-01-01", "dry_run": "False"}


def test_default_args_reach_every_task(compiled) -> None:
    dag = compiled[1].dags["my-project.my-flow"]
    for task in dag.tasks:
        assert task.owner == "data.owner@justice.gov.uk"
        assert task.retries == 2 and task.retry_delay == dt.timedelta(seconds=120)
        assert task.depends_on_past is True
        assert task.start_date == dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
        assert task.end_date == dt.datetime(2026, 1, 31, tzinfo=dt.UTC)
        # Airflow 3: mails through the SMTP provider's notifier on failure and retry, not the deprecated `email`
        assert task.email is None
        smtp = [cb for cb in task.on_failure_callback if type(cb).__name__ == "SmtpNotifier"]
        assert [cb.to for cb in smtp] == [["team@justice.gov.uk"]] and task.on_retry_callback == smtp
        slack = [cb for cb in task.on_failure_callback if type(cb).__name__ == "SlackNotifier"]
        assert [(cb.channel, cb.slack_conn_id) for cb in slack] == [("#data-alerts", "slack_api_default")]
        assert not task.on_success_callback


def test_pod_spec(compiled) -> None:
    dag = compiled[1].dags["my-project.my-flow"]
    extract, transform = dag.get_task("extract"), dag.get_task("transform_1")
    assert extract.image == "509399598587.dkr.ecr.eu-west-2.amazonaws.com/moj-analytical-services/example-repo:1.0"
    assert extract.image_pull_policy == "Always"
    assert (extract.name, transform.name) == ("my-project-my-flow-extract", "my-project-my-flow-transform-1")
    assert extract.namespace == "mwaa" and extract.service_account_name == "my-project-my-flow"
    assert extract.labels == {f"{LABEL}/environment": "development", f"{LABEL}/project": "my-project",
                              f"{LABEL}/workflow": "my-flow"}
    # compute: the task's GPU profile; the others inherit the DAG's
    assert extract.container_resources.requests == {"cpu": "8", "memory": "32Gi"}
    assert extract.container_resources.limits == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}
    assert transform.container_resources.limits == {"cpu": "4", "memory": "16Gi"}
    term = extract.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms[0]
    req = term.match_expressions[0]
    assert (req.key, req.operator, req.values) == (POOL_KEY, "In", ["gpu-spot"])
    tolerations = [(t.key, t.value, t.effect) for t in transform.tolerations]
    assert tolerations == [(POOL_KEY, "general-on-demand", "NoSchedule")]
    assert extract.annotations == {"karpenter.sh/do-not-disrupt": "true"}
    assert "kubernetes.io/ingress-bandwidth" in transform.annotations  # hmcts_sdp_networking on that task
    sc = extract.container_security_context
    assert (sc.allow_privilege_escalation, sc.privileged, sc.run_as_non_root) == (False, False, True)
    assert sc.capabilities.drop == ["ALL"] and sc.seccomp_profile.type == "RuntimeDefault"
    assert extract.security_context.run_as_non_root is True
    assert extract.get_logs and extract.log_pod_spec_on_failure and extract.startup_timeout_seconds == 600
    assert extract.on_finish_action.value == "delete_pod"


def test_each_task_owns_its_labels(compiled) -> None:
    """The operator adds a pod's own labels (task id, try number...) into its `labels` when it builds the pod:
    a dict shared by the DAG's tasks would carry one task's labels to the next."""
    dag = compiled[1].dags["my-project.my-flow"]
    extract, load = dag.get_task("extract"), dag.get_task("load")
    assert extract.labels is not load.labels
    extract.labels["added-by-extract"] = "x"
    assert "added-by-extract" not in load.labels


def test_env_vars_in_precedence_order(compiled) -> None:
    dag = compiled[1].dags["my-project.my-flow"]
    env = env_of(dag.get_task("extract"))
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1" and env["AIRFLOW_ENVIRONMENT"] == "DEVELOPMENT"
    assert env["AIRFLOW_RUN_ID"] == "{{ run_id }}" and env["AWS_METADATA_SERVICE_TIMEOUT"] == "60"
    assert (env["SHARED"], env["OVERRIDDEN"], env["FLAG"], env["NUMBER"]) == ("dag-level", "extract", "True", "42")
    assert env["PARAM_RUN_DATE"] == "{{ params.run_date }}" and env["PARAM_DRY_RUN"] == "{{ params.dry_run }}"
    assert env_of(dag.get_task("load"))["OVERRIDDEN"] == "dag"
    names = list(env)
    assert names.index("AWS_DEFAULT_REGION") < names.index("SHARED") < names.index("PARAM_RUN_DATE")


def test_secrets_are_kubernetes_secret_env_vars(compiled) -> None:
    task = compiled[1].dags["my-project.my-flow"].get_task("load")
    got = {(s.deploy_type, s.deploy_target, s.secret, s.key) for s in task.secrets}
    assert got == {("env", "SECRET_API_KEY", "my-project-my-flow-api-key", "data"),
                   ("env", "SECRET_DB_PASSWORD", "my-project-my-flow-db-password", "data")}


def test_single_task_dag_with_dataset_schedule_and_assets(compiled) -> None:
    dag = compiled[1].dags["my-project.single"]
    assert [t.task_id for t in dag.tasks] == ["main"]
    main = dag.get_task("main")
    assert main.name == "my-project-single"
    assert [a.uri for a in main.inlets] == ["s3://bucket/curated"]
    assert [a.uri for a in main.outlets] == ["s3://bucket/report"]
    assert "s3://bucket/curated" in repr(dag.timetable)
    assert main.retries == 0 and main.container_resources.limits == {"cpu": "1", "memory": "4Gi"}
    assert not main.on_failure_callback and not main.email


def test_output_is_deterministic(compiled, tmp_path) -> None:
    out, _ = compiled
    flow = out / "development" / "my-project" / "my-flow.py"
    again = tmp_path / "again"
    src = Path(str(flow).replace("/dags/development/my-project/my-flow.py", "/environments"))
    config = str(out.parent / "af3.toml")
    assert cli("workflow", "compile", str(src), "-o", str(again), "--config", config).returncode == 0
    assert (again / "development" / "my-project" / "my-flow.py").read_bytes() == flow.read_bytes()


def test_python_dag_is_the_users_file_with_placeholders_replaced(compiled) -> None:
    out, bag = compiled
    dag = bag.dags["my-project.user-dag"]  # dag_id from PLACEHOLDER_PROJECT.PLACEHOLDER_WORKFLOW
    task = dag.get_task("hello")
    assert task.image == "509399598587.dkr.ecr.eu-west-2.amazonaws.com/ministryofjustice/single-task:v2.3.4"
    assert task.owner == "someone@justice.gov.uk" and env_of(task) == {"WHERE": "development"}
    text = (out / "development" / "my-project" / "user-dag.py").read_text()
    assert "PLACEHOLDER" not in text and text.startswith("# my own DAG")
