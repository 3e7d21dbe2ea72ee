"""`workflow run`'s pure parts: pod -> container settings, secrets, params, task selection, masking."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from kubernetes.client import models as k8s

from ap_build.errors import UsageError
from ap_build.workflow.run.inputs import check_task, parse_logical_date, parse_params, secret_values
from ap_build.workflow.run.mask import Masker
from ap_build.workflow.run.pods import (
    ContainerSpec,
    container_from_pod,
    fit_to_engine,
    image_user_problem,
    select_tasks,
)


def pod(**container: object) -> k8s.V1Pod:
    env = [k8s.V1EnvVar(name="A", value="1"), k8s.V1EnvVar(name="RUN", value="{{ run_id }}"),
           k8s.V1EnvVar(name="SECRET_API_KEY", value_from=k8s.V1EnvVarSource(
               secret_key_ref=k8s.V1SecretKeySelector(name="p-w-api-key", key="data")))]
    container = {"command": [], "args": [], **container}
    main = k8s.V1Container(
        name="base", image="registry/x:1", env=env,
        resources=k8s.V1ResourceRequirements(limits={"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}),
        security_context=k8s.V1SecurityContext(allow_privilege_escalation=False, privileged=False, run_as_non_root=True,
                                               capabilities=k8s.V1Capabilities(drop=["ALL"])),
        **container)
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="p-w-extract-abc", labels={"l": "v"}),
        spec=k8s.V1PodSpec(containers=[main], host_aliases=[k8s.V1HostAlias(ip="10.0.0.1", hostnames=["a", "b"])],
                           security_context=k8s.V1PodSecurityContext(run_as_user=1000, run_as_group=1000)))


def test_pod_to_container_settings() -> None:
    spec = container_from_pod("extract", pod(), upstream={"b", "a"})
    assert spec.image == "registry/x:1" and spec.pod_name == "p-w-extract-abc" and spec.upstream == ("a", "b")
    assert spec.env == {"A": "1", "RUN": "{{ run_id }}"}  # templates left for Airflow to render
    assert spec.secret_env == {"SECRET_API_KEY": "p-w-api-key"}
    assert (spec.nano_cpus, spec.mem_bytes, spec.gpu) == (8 * 10**9, 32 * 2**30, True)
    assert spec.extra_hosts == {"a": "10.0.0.1", "b": "10.0.0.1"}
    assert spec.user == "1000:1000"  # from the pod's security context
    assert spec.cap_drop == ("ALL",) and spec.no_new_privileges and not spec.privileged and spec.run_as_non_root
    assert spec.entrypoint is None and spec.command is None and spec.labels == {"l": "v"}
    with_cmd = container_from_pod("t", pod(working_dir="/w", command=["python3"], args=["x.py"]))
    assert (with_cmd.working_dir, with_cmd.entrypoint, with_cmd.command) == ("/w", ["python3"], ["x.py"])


def test_limits_are_capped_at_the_engines_resources() -> None:
    spec = container_from_pod("t", pod())
    fitted = fit_to_engine(spec, ncpu=2, mem_total=8 * 2**30)
    assert (fitted.nano_cpus, fitted.mem_bytes) == (2 * 10**9, 8 * 2**30)
    assert fit_to_engine(spec, ncpu=None, mem_total=None) == spec


def test_secrets_from_dotenv_by_name_or_variable(tmp_path: Path) -> None:
    env = tmp_path / "s.env"
    env.write_text("api-key=one\nSECRET_DB_PASSWORD='two words'\n# comment\n")
    assert secret_values(["api-key", "db-password"], env) == \
        {"SECRET_API_KEY": "one", "SECRET_DB_PASSWORD": "two words"}
    assert secret_values([], None) == {}


def test_every_missing_secret_is_named_and_no_value_is_shown(tmp_path: Path) -> None:
    env = tmp_path / "s.env"
    env.write_text("api-key=hunter22\n")
    with pytest.raises(UsageError) as exc:
        secret_values(["api-key", "db-password", "token"], env)
    assert "db-password (SECRET_DB_PASSWORD)" in exc.value.message and "token (SECRET_TOKEN)" in exc.value.message
    assert "api-key" not in exc.value.message and "hunter22" not in str(exc.value) + (exc.value.hint or "")
    with pytest.raises(UsageError, match="no --secrets file gives"):
        secret_values(["api-key"], None)
    with pytest.raises(UsageError, match="no such secrets file"):
        secret_values(["api-key"], tmp_path / "nope.env")


def test_params_must_be_declared() -> None:
    assert parse_params(["run_date=2025-01-02", "x=a=b"], {"run_date": "", "x": ""}) == \
        {"run_date": "2025-01-02", "x": "a=b"}
    with pytest.raises(UsageError, match="no such param") as exc:
        parse_params(["run_dat=1"], {"run_date": ""})
    assert exc.value.hint == "did you mean `run_date`?"
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_params(["run_date"], {"run_date": ""})


def _spec(task: str, *up: str) -> ContainerSpec:
    return ContainerSpec(task_id=task, pod_name=task, image="i", env={}, secret_env={}, upstream=up)


def test_select_a_task_with_or_without_its_upstream() -> None:
    specs = [_spec("a"), _spec("b", "a"), _spec("c", "b"), _spec("d", "a")]
    assert [s.task_id for s in select_tasks(specs, None, False)] == ["a", "b", "c", "d"]
    alone = select_tasks(specs, "c", False)
    assert [(s.task_id, s.upstream) for s in alone] == [("c", ())]
    chain = select_tasks(specs, "c", True)
    assert [(s.task_id, s.upstream) for s in chain] == [("a", ()), ("b", ("a",)), ("c", ("b",))]
    with pytest.raises(UsageError, match="no such task") as exc:
        select_tasks(specs, "cc", False)
    assert "did you mean `c`?" in (exc.value.hint or "")
    with pytest.raises(UsageError, match="no such task") as exc:
        check_task("extract", ["main"])
    assert exc.value.hint == "tasks: main"


def test_masker_hides_every_secret_value_and_each_of_its_lines() -> None:
    mask = Masker(["abc", "abcdef", "multi\nline", ""])
    assert mask("x abcdef y abc") == "x *** y ***"
    assert mask("line only") == "*** only" and mask("nothing here") == "nothing here"
    assert Masker([])("abc") == "abc"


@pytest.mark.parametrize(("user", "refused"), [("", True), ("root", True), ("0:0", True), ("1000", False),
                                               ("1000:1000", False), ("analyticalplatform", True)])
def test_run_as_non_root_as_kubernetes_checks_it(user: str, refused: bool) -> None:
    assert (image_user_problem(user) is not None) is refused


def test_logical_date() -> None:
    start, end = dt.date(2025, 1, 1), dt.date(2025, 12, 31)
    assert parse_logical_date("2025-06-30", start, end) == dt.datetime(2025, 6, 30, tzinfo=dt.UTC)
    assert parse_logical_date("2025-06-30T06:00:00+01:00", start, end).utcoffset() == dt.timedelta(hours=1)
    assert parse_logical_date(None, start, None).tzinfo is dt.UTC
    with pytest.raises(UsageError, match="outside the workflow's dates"):
        parse_logical_date("2024-12-31", start, end)
    with pytest.raises(UsageError, match="is not a date"):
        parse_logical_date("yesterday", start, end)


def test_view_prefixes_masks_and_reports_states() -> None:
    import io

    from rich.console import Console

    from ap_build.workflow.run.view import RunView

    buf = io.StringIO()
    view = RunView(["extract", "load"], Masker(["hunter22"]))
    view.start(Console(file=buf, width=200, markup=False))  # not a terminal: state lines, no live table
    view.started("extract", "c1")
    view.line("extract", "token=hunter22 [bold]not markup[/]")
    view.finished("extract", 3, False)
    view.settle({"extract": "failed", "load": "upstream_failed"})
    view.stop()
    text = buf.getvalue()
    assert "extract | token=*** [bold]not markup[/]" in text and "hunter22" not in text
    assert "extract: running" in text and "extract: failed (exit 3," in text and "load: upstream_failed" in text
    assert [(t.state, t.exit_code) for t in view.tasks.values()] == [("failed", 3), ("upstream_failed", None)]


@pytest.mark.parametrize(("exit_code", "succeeded", "state"), [(0, True, "success"), (0, False, "failed"),
                                                                (None, False, "failed"), (None, True, "failed")])
def test_view_reports_success_only_for_a_container_that_ran_and_exited_0(
        exit_code: int | None, succeeded: bool, state: str) -> None:
    import io

    from rich.console import Console

    from ap_build.workflow.run.view import RunView

    buf = io.StringIO()
    view = RunView(["t"], Masker([]))
    view.start(Console(file=buf, width=200, markup=False))
    view.started("t", "c1")
    view.finished("t", exit_code, succeeded)
    assert view.tasks["t"].state == state and f"t: {state} (" in buf.getvalue()
    assert ("its container did not run" in buf.getvalue()) is (exit_code is None)


def test_aws_credentials_are_off_unless_asked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ap_build.errors import ToolError
    from ap_build.workflow.run.inputs import aws_credentials

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CREDENTIAL_EXPIRATION"):
        monkeypatch.delenv(key, raising=False)
    assert aws_credentials(None, False) == {}
    with pytest.raises(UsageError, match="none of the host's AWS credential variables"):
        aws_credentials(None, True)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    assert aws_credentials(None, True) == {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s"}
    monkeypatch.setenv("PATH", str(tmp_path))  # no AWS CLI
    with pytest.raises(ToolError, match="needs the AWS CLI"):
        aws_credentials("dev", False)


@pytest.mark.parametrize(("answer", "error"), [
    ('{"AccessKeyId": "AKIA2", "SecretAccessKey": "s2", "SessionToken": "t2"}', None),
    ("not json", "is not the credentials JSON"),
    ('{"AccessKeyId": "AKIA2"}', "is not the credentials JSON"),
    ('{"AccessKeyId": "AKIA2", "SecretAccessKey": "s\\u00002"}', "holds a NUL character"),
])
def test_aws_profile_credentials_come_from_the_aws_cli_and_are_checked(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, answer: str, error: str | None) -> None:
    """`--aws-profile` runs `aws configure export-credentials` (here a stand-in `aws` on PATH answering as
    the AWS CLI v2 does, or not)."""
    from ap_build.errors import ApBuildError
    from ap_build.workflow.run.inputs import aws_credentials

    (tmp_path / "answer.json").write_text(answer)
    aws = tmp_path / "aws"
    aws.write_text('#!/bin/sh\n[ "$1 $2 $4" = "configure export-credentials dev" ] && '
                   f"exec /bin/cat {tmp_path}/answer.json\n")
    aws.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    if error is None:
        assert aws_credentials("dev", False) == {"AWS_ACCESS_KEY_ID": "AKIA2", "AWS_SECRET_ACCESS_KEY": "s2",
                                                 "AWS_SESSION_TOKEN": "t2"}
    else:
        with pytest.raises(ApBuildError, match=error) as exc:
            aws_credentials("dev", False)
        assert "s\x002" not in str(exc.value)
