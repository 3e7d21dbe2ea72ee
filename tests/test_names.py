"""The naming rules (ap_build/names.py) and that compile, IAM, show, run and migrate use them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ap_build import names
from ap_build.migrate import report
from ap_build.workflow import iam
from ap_build.workflow.run import inputs
from ap_build.workflow.settings import Identity, load_settings


def test_each_rule() -> None:
    assert names.dag_id("emds", "load") == "emds.load"
    assert names.resource_name("emds", "load") == "emds-load"
    assert names.secret_resource("emds", "load", "api-key") == "emds-load-api-key"
    assert names.role_name("production", "emds", "load") == "airflow-production-emds-load"
    assert names.secret_env("api-key") == "SECRET_API_KEY"
    assert names.image_ref("r.example", "My_Repo", "v1") == "r.example/my-repo:v1"
    assert names.ecr_repository("ministryofjustice/My_Repo") == "ministryofjustice/my-repo"


def test_scaffold_and_workflow_agree_on_the_image_repository() -> None:
    from ap_build.scaffold.render import ecr_repository_name

    assert ecr_repository_name("moj-analytical-services", "Data_Job") == "moj-analytical-services/data-job"
    assert names.image_ref("r", "moj-analytical-services/Data_Job", "v1") == "r/moj-analytical-services/data-job:v1"


@given(st.from_regex(r"[a-z0-9]+(-[a-z0-9]+)*", fullmatch=True))
def test_secret_env_round_trips(secret: str) -> None:
    assert names.secret_from_env(names.secret_env(secret)) == secret


def test_identity_and_callers_use_the_aliased_project() -> None:
    settings = load_settings()
    project = next(iter(settings.aliases))
    alias = settings.aliases[project]
    ident = Identity("production", project, "load")
    assert ident.dag_id(settings) == f"{alias}.load"
    assert ident.resource_name(settings) == iam.service_account_name(ident, settings) == f"{alias}-load"
    assert ident.role_name(settings) == f"airflow-production-{alias}-load"
    assert ident.role_name() == f"airflow-production-{project}-load"
    assert inputs.env_name("db-pass") == "SECRET_DB_PASS"


def test_migrate_reports_secrets_by_the_same_rule() -> None:
    found = report.scan({"run.py": b"os.environ['SECRET_DB_PASSWORD']\n"}, set())
    assert found.secrets == [("run.py:1", "db-password")]
    assert names.secret_env(found.secrets[0][1]) == "SECRET_DB_PASSWORD"

