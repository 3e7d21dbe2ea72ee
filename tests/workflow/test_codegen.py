"""Pure code generation: settings variants, determinism, and that the output is plain Python."""

from __future__ import annotations

import ast
import dataclasses

import pytest

from ap_build.workflow.codegen import render_dag
from ap_build.workflow.plan import as_text, plan_tasks, pod_name, split_profile
from ap_build.workflow.settings import Identity, load_settings
from ap_build.workflow.validate import validate_text
from workflow.helpers import FULL

IDENT = Identity("production", "my-project", "my-flow")


def render(**changes) -> str:
    result = validate_text(FULL, "wf.yml", IDENT)
    return render_dag(result.manifest, IDENT, dataclasses.replace(load_settings(), **changes))


def imported_modules(source: str) -> set[str]:
    tree = ast.parse(source)
    return {n.module if isinstance(n, ast.ImportFrom) else a.name
            for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
            for a in (n.names if isinstance(n, ast.Import) else [n])}


def test_imports_only_airflow_the_provider_and_the_kubernetes_client() -> None:
    mods = imported_modules(render(airflow=3))
    allowed = ("airflow", "kubernetes", "__future__", "datetime", "functools", "json", "urllib")
    assert all(m.split(".")[0] in allowed for m in mods), mods
    assert "airflow.sdk" in mods


def test_airflow_2_line_uses_datasets() -> None:
    mods = imported_modules(render(airflow=2))
    assert {"airflow", "airflow.datasets"} <= mods and "airflow.sdk" not in mods
    assert "Dataset('s3://bucket/raw')" in render(airflow=2)


def test_one_slack_message_per_dag_run_option() -> None:
    per_task, per_dag = render(), render(notify_per="dag")
    assert "'on_failure_callback': [SLACK_FAILURE]," in per_task
    assert "    on_failure_callback=[SLACK_FAILURE]," not in per_task
    assert "    on_failure_callback=[SLACK_FAILURE]," in per_dag and "'on_failure_callback'" not in per_dag
    assert "SLACK_SUCCESS" not in per_task  # slack_events: [failure]


def test_emails_on_airflow_3_through_the_smtp_notifier() -> None:
    af2, af3 = render(), render(airflow=3)
    assert "'email': ['team@justice.gov.uk']," in af2 and "SmtpNotifier" not in af2
    assert "'email'" not in af3 and "EMAIL = SmtpNotifier(to=['team@justice.gov.uk'])" in af3
    assert "'on_failure_callback': [SLACK_FAILURE, EMAIL]," in af3 and "'on_retry_callback': [EMAIL]," in af3


def test_aliases_and_determinism() -> None:
    aliased = render(aliases={"my-project": "mp"})
    assert "dag_id='mp.my-flow'" in aliased and "name='mp-my-flow-extract'" in aliased
    # set or dict order that depends on the hash seed differs only between processes: render in two
    assert render_in_new_process(seed="1") == render_in_new_process(seed="2") == render()


def render_in_new_process(seed: str) -> str:
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parents[1]
    code = "import sys; from workflow.test_codegen import render; sys.stdout.write(render())"
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(tests)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout


def task_envs(source: str) -> dict[str, list[tuple[str, str]]]:
    """Each task's env vars as the file builds them: its `env_vars` argument evaluated after ENV."""
    tree = ast.parse(source)
    [env] = [n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "ENV"]
    scope = {"ENV": ast.literal_eval(env), "env": lambda values: values, "dict": dict}
    kwargs = [{k.arg: k.value for k in n.keywords} for n in ast.walk(tree)
              if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "KubernetesPodOperator"]

    def value(node: ast.expr) -> dict[str, str]:
        return eval(compile(ast.Expression(node), "env_vars", "eval"), scope)

    return {ast.literal_eval(k["task_id"]): list(value(k["env_vars"]).items()) for k in kwargs}


@pytest.mark.parametrize("airflow", [2, 3])
def test_env_vars_shared_once_and_each_task_keeps_its_own_in_order(airflow: int) -> None:
    """The env vars all tasks start with are written once (ENV); each task's own follow, so the pod gets
    the same list in the same order (a task overriding a DAG env var keeps that var's place)."""
    settings = dataclasses.replace(load_settings(), airflow=airflow)
    for text in (FULL, FULL.replace("      env_vars:\n        OVERRIDDEN: extract\n", "")):
        m = validate_text(text, "wf.yml", IDENT).manifest
        source = render_dag(m, IDENT, settings)
        expected = {t.task_id: list(t.env.items()) for t in plan_tasks(m, IDENT, settings)}
        assert task_envs(source) == expected
        assert source.count("'AWS_DEFAULT_REGION': ") == 1
    names = [k for k, _ in expected["extract"]]
    assert names.index("SHARED") < names.index("OVERRIDDEN") < names.index("FLAG") < names.index("PARAM_RUN_DATE")


def test_split_profile() -> None:
    assert split_profile("gpu-on-demand-4vcpu-16gb") == ("gpu", "on-demand", "4vcpu-16gb")
    assert split_profile("general-spot-120vcpu-500gb") == ("general", "spot", "120vcpu-500gb")


def test_output_is_lint_clean_python(tmp_path) -> None:
    """No unused imports or undefined names; long containers are laid out one item per line."""
    import subprocess
    import sys
    from pathlib import Path

    from workflow.helpers import SINGLE

    single = validate_text(SINGLE, "wf.yml", IDENT)
    af3 = dataclasses.replace(load_settings(), airflow=3)
    files = {"full.py": render(), "single.py": render_dag(single.manifest, IDENT, af3),
             "af2.py": render(airflow=2)}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    ruff = Path(sys.executable).parent / "ruff"
    proc = subprocess.run([str(ruff), "check", "--no-cache", "--isolated", "--select", "E,F,W", "--ignore", "E501",
                           str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    assert "ENV = {\n    'AWS_DEFAULT_REGION': 'eu-west-1',\n" in files["full.py"]
    assert "        env_vars=env({\n            **ENV,\n            'OVERRIDDEN': 'extract',\n" in files["af2.py"]
    assert "import Secret" not in files["single.py"] and "Asset" in files["single.py"]


def test_platform_names_values_and_cluster_access() -> None:
    assert pod_name("my-project-load_sop__snapshots") == "my-project-load-sop-snapshots"  # as the provider makes it
    assert as_text("Account\\ Management") == "Account Management"  # the platform's YAML double quotes
    assert as_text("a\\q") == "a\\q" and as_text(False) == "False"  # not a valid escape: literal
    text = render()
    assert "KUBE_CONFIG_FILE = '/usr/local/airflow/dags/.kube/config'" in text  # MWAA reaches EKS through it
    assert text.count("config_file=KUBE_CONFIG_FILE,") == text.count("in_cluster=False,") == 1  # in POD_ARGS
    assert text.count("        **POD_ARGS,\n    )") == 3  # which every task gets
    # node pool, size and networking: one set of arguments per kind, built once, named for what it is
    assert text.count("affinity=affinity(") == 3 and text.count("**GENERAL_ON_DEMAND_4CPU_16GB,") == 1
    assert "GENERAL_ON_DEMAND_4CPU_16GB_HMCTS = dict(\n    annotations=HMCTS_ANNOTATIONS,\n" in text
    assert "GPU_SPOT_8CPU_32GB = dict(" in text and "resources('8', '32Gi', True)" in text
    assert "host_aliases=HMCTS_HOST_ALIASES," in text and "'kubernetes.io/egress-bandwidth': '175M'" in text
    assert "'AWS_DEFAULT_REGION': 'eu-west-1'" in text


def test_compiled_files_are_0644_and_keep_an_existing_mode(tmp_path) -> None:
    import os
    from pathlib import Path

    from ap_build.workflow.compiler import compile_many

    src = tmp_path / "environments" / "production" / "my-project" / "my-flow" / "workflow.yml"
    src.parent.mkdir(parents=True)
    src.write_text(FULL)
    out = tmp_path / "dags"
    old = os.umask(0o077)  # a strict umask must not make DAG files unreadable to the scheduler
    try:
        [first] = compile_many([(src, IDENT)], out, load_settings())
        modes = {Path(p).name: Path(p).stat().st_mode & 0o777 for p in first.written}
        assert modes == {"my-flow.py": 0o644}
        Path(first.written[0]).chmod(0o640)
        compile_many([(src, IDENT)], out, load_settings())
        assert Path(first.written[0]).stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
