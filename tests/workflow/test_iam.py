"""`--iam`: each fixture's role, policy and service account, derived by hand from the platform's Terraform
(analytical-platform-airflow terraform/modules/airflow/, analytical-platform .../airflow-service/)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ap_build.errors import UsageError
from ap_build.workflow.iam import IamSettingMissing, iam_settings, workflow_iam
from ap_build.workflow.settings import Identity, load_settings
from ap_build.workflow.validate import validate_text
from workflow.helpers import cli
from workflow.iam_grammar import grammar_errors, parliament_findings

ACCOUNT = "593291632749"
OIDC = "oidc.eks.eu-west-2.amazonaws.com/id/1972AFFBD0701A0D1FD291E34F7D1287"  # development's cluster
SHARED = f"arn:aws:iam::{ACCOUNT}:policy/airflow-service/"
SECRETS_WRITE_CONFIG = '[iam.actions]\nupdate_secrets = ["secretsmanager:PutSecretValue"]\n'
NO_CLUSTER_ID = '[iam.oidc_provider_ids]\ndevelopment = ""\n'


def manifest(iam: str = "", repository: str = "moj-analytical-services/example", secrets: str = "") -> str:
    text = (f"dag:\n  repository: {repository}\n  tag: v1\nmaintainers: [octocat]\n"
            "tags:\n  business_unit: Platforms\n  owner: someone@justice.gov.uk\n")
    return text + (f"iam:\n{iam}" if iam else "") + secrets


def build(iam: str = "", *, project: str = "my-project", workflow: str = "my-flow", settings=None, **kw) -> dict:
    ident = Identity("development", project, workflow)
    result = validate_text(manifest(iam, **kw), "workflow.yml", ident)
    assert result.problems == [], result.problems
    return workflow_iam(result.manifest, ident, settings or load_settings(), source="workflow.yml")


def statements(doc: dict) -> dict[str, dict]:
    return {s["Sid"]: s for s in doc["policy"]["document"]["Statement"]}


def test_every_role_gets_its_policy_kms_and_secrets_in_both_regions() -> None:
    doc = build()  # no iam section at all: the platform still makes a role
    name = "airflow-development-my-project-my-flow"
    assert doc["role"]["name"] == doc["policy"]["name"] == name
    assert doc["role"]["arn"] == f"arn:aws:iam::{ACCOUNT}:role/{name}"
    assert doc["role"]["max_session_duration"] == 43200
    assert doc["role"]["policy_arns"] == [f"arn:aws:iam::{ACCOUNT}:policy/{name}", SHARED + "kms"]
    assert doc["policy"]["document"] == {"Version": "2012-10-17", "Statement": [{
        "Sid": "SecretsManager", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
        "Resource": [f"arn:aws:secretsmanager:eu-west-2:{ACCOUNT}:secret:/airflow/development/my-project/my-flow/*",
                     f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:/airflow/development/my-project/my-flow/*"]}]}
    trust = doc["role"]["assume_role_policy"]
    assert trust == {"Version": "2012-10-17", "Statement": [{
        "Sid": "", "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
        "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC}"},
        "Condition": {"StringEquals": {f"{OIDC}:aud": "sts.amazonaws.com",
                                       f"{OIDC}:sub": "system:serviceaccount:mwaa:my-project-my-flow"}}}]}
    assert list(trust["Statement"][0]["Condition"]["StringEquals"]) == [f"{OIDC}:aud", f"{OIDC}:sub"]
    domain = "airflow.compute.analytical-platform.service.justice.gov.uk"
    assert doc["service_account"] == {
        "namespace": "mwaa", "name": "my-project-my-flow",
        "labels": {f"{domain}/environment": "development", f"{domain}/project": "my-project",
                   f"{domain}/workflow": "my-flow"},
        "annotations": {"eks.amazonaws.com/role-arn": doc["role"]["arn"]}}
    assert grammar_errors(doc) == [] and parliament_findings(doc) == []


@pytest.mark.parametrize(("athena", "shared"), [("read", ["athena-read"]), ("write", ["athena-read", "athena-write"])])
def test_athena_write_attaches_read_and_write(athena: str, shared: list[str]) -> None:
    arns = build(f"  athena: {athena}\n")["role"]["policy_arns"]
    assert arns[1:] == [SHARED + s for s in shared] + [SHARED + "kms"]


def test_s3_statements_are_the_terraforms() -> None:
    doc = build("  s3_deny: [bucket-a/private/*]\n  s3_read_only: [bucket-b/in/*, bucket-a/raw/*]\n"
                "  s3_read_write: ['s3://bucket-c/curated/*']\n  s3_write_only: [bucket-d/out/*]\n")
    s = statements(doc)
    assert list(s) == ["S3BucketAccess", "S3Deny", "S3ReadOnly", "S3ReadWrite", "S3WriteOnly", "SecretsManager"]
    assert s["S3BucketAccess"] == {"Sid": "S3BucketAccess", "Effect": "Allow",
                                   "Action": ["s3:ListBucket", "s3:ListAllMyBuckets", "s3:GetBucketLocation"],
                                   "Resource": ["arn:aws:s3:::bucket-d", "arn:aws:s3:::bucket-c",
                                                "arn:aws:s3:::bucket-b", "arn:aws:s3:::bucket-a"]}
    assert s["S3Deny"]["Effect"] == "Deny" and s["S3Deny"]["Resource"] == "arn:aws:s3:::bucket-a/private/*"
    assert sorted(s["S3Deny"]["Action"]) == ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject",
                                             "s3:GetObjectAcl", "s3:GetObjectVersion", "s3:PutObject",
                                             "s3:PutObjectAcl", "s3:RestoreObject"]
    assert s["S3ReadOnly"] == {"Sid": "S3ReadOnly", "Effect": "Allow",
                               "Action": ["s3:GetObjectVersion", "s3:GetObjectAcl", "s3:GetObject"],
                               "Resource": ["arn:aws:s3:::bucket-b/in/*", "arn:aws:s3:::bucket-a/raw/*"]}
    assert sorted(s["S3ReadWrite"]["Action"]) == [
        "s3:CreateMultipartUpload", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject", "s3:GetObjectAcl",
        "s3:GetObjectTagging", "s3:GetObjectVersion", "s3:PutObject", "s3:PutObjectAcl", "s3:PutObjectTagging",
        "s3:RestoreObject"]
    assert s["S3ReadWrite"]["Resource"] == "arn:aws:s3:::bucket-c/curated/*"  # s3:// dropped (intentional)
    assert sorted(s["S3WriteOnly"]["Action"]) == ["s3:CreateMultipartUpload", "s3:DeleteObject",
                                                  "s3:DeleteObjectVersion", "s3:PutObject", "s3:PutObjectAcl",
                                                  "s3:RestoreObject"]
    assert grammar_errors(doc) == []
    # the platform's own two quirks, kept for parity (docs/workflow.md): nothing else
    assert sorted({f[0] for f in parliament_findings(doc)}) == ["RESOURCE_MISMATCH", "UNKNOWN_ACTION"]


def test_kms_keys_bedrock_and_glue() -> None:
    key = "arn:aws:kms:eu-west-2:123456789012:key/abcd"
    doc = build(f"  kms: ['{key}']\n  bedrock: true\n  glue: true\n")
    s = statements(doc)
    assert list(s) == ["GluePassRole", "KMS", "SecretsManager"]
    assert s["KMS"] == {"Sid": "KMS", "Effect": "Allow", "Resource": key,
                        "Action": ["kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Encrypt", "kms:DescribeKey",
                                   "kms:Decrypt"]}
    assert s["GluePassRole"] == {
        "Sid": "GluePassRole", "Effect": "Allow", "Action": "iam:PassRole",
        "Resource": f"arn:aws:iam::{ACCOUNT}:role/airflow-development-my-project-my-flow",
        "Condition": {"StringEquals": {"iam:PassedToService": "glue.amazonaws.com"}}}
    assert doc["role"]["policy_arns"][1:] == [SHARED + "bedrock", SHARED + "glue", SHARED + "kms"]
    assert grammar_errors(doc) == [] and parliament_findings(doc) == []


def test_cadet_policy_for_cadet_deployments_only() -> None:
    cadet = build("  athena: write\n", repository="ministryofjustice/analytical-platform-airflow-cadet-deployer")
    assert cadet["role"]["policy_arns"][-1] == SHARED + "cadet"
    assert SHARED + "cadet" not in build("  athena: write\n")["role"]["policy_arns"]


def test_external_role_annotates_the_service_account_and_makes_no_role() -> None:
    role = "arn:aws:iam::123456789012:role/existing"
    doc = build(f"  external_role: {role}\n  athena: write\n")
    assert doc["external_role"] == role and doc["role"] is None and doc["policy"] is None
    assert doc["service_account"]["annotations"] == {"eks.amazonaws.com/role-arn": role}


@pytest.mark.parametrize(("project", "alias"), [("electronic-monitoring-data-store", "emds"),
                                                ("electronic-monitoring-data-store-pp", "emds-pp")])
def test_project_alias_in_role_secrets_trust_and_service_account(project: str, alias: str) -> None:
    doc = build("  glue: true\n", project=project, workflow="load")  # the aliases are the platform's defaults
    name = f"airflow-development-{alias}-load"
    assert doc["role"]["name"] == doc["policy"]["name"] == name
    assert statements(doc)["GluePassRole"]["Resource"].endswith(f":role/{name}")
    assert all(f"/airflow/development/{alias}/load/*" in r for r in statements(doc)["SecretsManager"]["Resource"])
    assert doc["service_account"]["name"] == f"{alias}-load"
    assert doc["service_account"]["labels"]["airflow.compute.analytical-platform.service.justice.gov.uk/project"] \
        == alias
    condition = doc["role"]["assume_role_policy"]["Statement"][0]["Condition"]["StringEquals"]
    assert condition[f"{OIDC}:sub"] == f"system:serviceaccount:mwaa:{alias}-load"
    assert project not in json.dumps(doc)


def test_the_spec_statements_that_terraform_does_not_show() -> None:
    log_group = "arn:aws:logs:eu-west-2:123456789012:log-group:/app/x:*"
    doc = build(f"  lake_formation: true\n  update_secrets: true\n  textract: true\n  s3_read_only: [docs-in/in/*]\n"
                f"  cloudwatch_logs_read_only: ['{log_group}']\n", secrets="secrets: [api-key, db-password]\n")
    s = statements(doc)
    assert list(s)[-4:] == ["CloudWatchLogsReadOnly", "LakeFormation", "Textract", "SecretsManagerUpdate"]
    logs = s["CloudWatchLogsReadOnly"]
    assert logs["Resource"] == log_group
    assert {"logs:GetLogEvents", "logs:FilterLogEvents", "logs:StartQuery"} <= set(logs["Action"])
    assert not any(a.startswith(("logs:Put", "logs:Delete", "logs:Create")) for a in logs["Action"])
    assert (s["LakeFormation"]["Action"], s["LakeFormation"]["Resource"]) == ("lakeformation:GetDataAccess", "*")
    assert s["Textract"]["Resource"] == "*" and "textract:AnalyzeDocument" in s["Textract"]["Action"]
    update = s["SecretsManagerUpdate"]
    assert update["Action"] == ["secretsmanager:UpdateSecret", "secretsmanager:PutSecretValue"]  # Terraform's order
    prefix = f"arn:aws:secretsmanager:{{}}:{ACCOUNT}:secret:/airflow/development/my-project/my-flow/"
    assert sorted(update["Resource"]) == sorted(prefix.format(region) + f"{name}-??????"
                                                for region in ("eu-west-2", "eu-west-1")
                                                for name in ("api-key", "db-password"))
    assert doc["role"]["policy_arns"] == [doc["policy"]["arn"], SHARED + "kms"]  # no shared textract policy set
    assert grammar_errors(doc) == []
    assert "SecretsManagerUpdate" not in statements(build("  update_secrets: true\n"))  # no secret declared


def test_a_missing_cluster_id_stops_iam() -> None:
    settings = load_settings()
    settings = dataclasses.replace(settings, iam={**settings.iam, "oidc_provider_ids": {"development": ""}})
    with pytest.raises(IamSettingMissing, match=r"iam\.oidc_provider_ids\.development"):
        build(settings=settings)


def test_config_file_sets_one_iam_value_and_keeps_the_rest(tmp_path: Path) -> None:
    config = tmp_path / "platform.toml"
    config.write_text(SECRETS_WRITE_CONFIG + '[iam.managed_policies]\ntextract = ["airflow-service/textract"]\n')
    settings = load_settings(config)
    assert iam_settings(settings).account_id == ACCOUNT  # the packaged value survives a partial [iam]
    doc = build("  update_secrets: true\n  textract: true\n  s3_read_only: [docs-in/in/*]\n", settings=settings,
                secrets="secrets: [api-key]\n")
    s = statements(doc)
    assert s["SecretsManagerUpdate"]["Action"] == "secretsmanager:PutSecretValue"
    assert s["Textract"]["Action"][0].startswith("textract:")  # the packaged value survives a partial [iam.actions]
    assert SHARED + "textract" in doc["role"]["policy_arns"]


@pytest.mark.parametrize(("toml", "message"), [
    ("[iam]\naccount = '1'", "iam.account: Extra inputs"),
    ("[iam]\naccount_id = '5932917'", "iam.account_id: String should match"),
    ("[iam]\noidc_provider = 'oidc.example/id'", "iam.oidc_provider: String should match"),
    ("[iam.actions]\nlake_formation = []", "iam.actions.lake_formation: Tuple should have at least 1"),
    ("[iam.actions]\nlake_formations = ['lakeformation:GetDataAccess']", "iam.actions.lake_formations: Extra inputs"),
    ("[iam.actions]\nlake_formation = ['GetDataAccess']", "iam.actions.lake_formation.0: String should match"),
    ("[iam.managed_policies]\nbedrok = ['x']", "iam.managed_policies.bedrok: Input should be"),
])
def test_bad_iam_settings_are_refused_naming_the_key(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "platform.toml"
    config.write_text(toml + "\n")
    with pytest.raises(UsageError) as exc:
        iam_settings(load_settings(config))
    assert exc.value.message.startswith(f"settings: {message}"), exc.value.message


def test_cli_writes_one_json_per_workflow_and_exits_2_on_an_unset_value(manifest_tree, tmp_path: Path) -> None:
    manifest_tree(manifest("  athena: write\n"), workflow="plain")
    manifest_tree(manifest("  external_role: arn:aws:iam::123456789012:role/existing\n"), workflow="external")
    own_dag = manifest_tree(manifest("  bedrock: true\n").replace("  tag: v1\n", "  tag: v1\n  python_dag: true\n"),
                            workflow="own-dag")
    (own_dag.parent / "dag.py").write_text("# the user's own DAG, copied by compile\n")
    manifest_tree(manifest("  update_secrets: true\n", secrets="secrets: [api-key]\n"), workflow="writer")
    tree, out = tmp_path / "environments", tmp_path / "dags"
    config = tmp_path / "platform.toml"
    config.write_text(NO_CLUSTER_ID)
    proc = cli("workflow", "compile", str(tree), "-o", str(out), "--iam", "--config", str(config))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "iam.oidc_provider_ids.development" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(out.rglob("own-dag.*"))  # the workflow that needs the value: neither DAG nor IAM written
    proc = cli("workflow", "compile", str(tree), "-o", str(out), "--iam")
    assert proc.returncode == 0, proc.stderr
    folder = out / "development" / "my-project"
    assert sorted(p.name for p in folder.glob("*.iam.json")) == ["external.iam.json", "own-dag.iam.json",
                                                                "plain.iam.json", "writer.iam.json"]
    own = json.loads((folder / "own-dag.iam.json").read_text())  # a python_dag workflow has its IAM too
    assert own["role"]["name"] == "airflow-development-my-project-own-dag" and SHARED + "bedrock" in \
        own["role"]["policy_arns"]
    plain = json.loads((folder / "plain.iam.json").read_text())
    assert plain == build("  athena: write\n", workflow="plain")  # the file is the library's document
    assert json.loads((folder / "external.iam.json").read_text())["role"] is None
