"""A workflow's IAM, as the platform's Terraform builds it (pure): role, trust, policy, service account.

Mirrors ministryofjustice/analytical-platform-airflow `terraform/modules/airflow/` (iam-role.tf,
iam-policy.tf, service-account.tf, instantiated per workflow by `terraform/main.tf`) and the shared
`airflow-service/*` policies of ministryofjustice/analytical-platform; the statements that Terraform does
not show (CloudWatch Logs, Lake Formation, Textract, secret updates) follow the spec. Every platform value
is a setting (`[iam]` in defaults.toml); a setting left empty makes a manifest that needs it raise
`IamSettingMissing` (exit 2) instead of getting a policy that cannot work.
docs/workflow.md ("IAM") lists what is verified against the Terraform and what is from the spec.
"""

from __future__ import annotations

import json
import tomllib
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ap_build.errors import UsageError
from ap_build.workflow import model
from ap_build.workflow.settings import Identity, Settings

VERSION = "2012-10-17"
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
# Statement action lists exactly as iam-policy.tf writes them (the order is Terraform's, see _tf_list).
KMS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]
S3_BUCKET = ["s3:GetBucketLocation", "s3:ListAllMyBuckets", "s3:ListBucket"]
S3_DENY = ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject", "s3:GetObjectAcl", "s3:GetObjectVersion",
           "s3:PutObject", "s3:PutObjectAcl", "s3:RestoreObject"]
S3_READ_ONLY = ["s3:GetObject", "s3:GetObjectAcl", "s3:GetObjectVersion"]
S3_READ_WRITE = ["s3:CreateMultipartUpload", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject",
                 "s3:GetObjectAcl", "s3:GetObjectTagging", "s3:GetObjectVersion", "s3:PutObject", "s3:PutObjectAcl",
                 "s3:PutObjectTagging", "s3:RestoreObject"]
S3_WRITE_ONLY = ["s3:CreateMultipartUpload", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObject",
                 "s3:PutObjectAcl", "s3:RestoreObject"]
# manifest flag -> the [iam.managed_policies] key it needs
POLICY_KEYS = ("always", "athena_read", "athena_write", "bedrock", "glue", "cadet", "textract")


class IamSettingMissing(UsageError):
    """A manifest asks for IAM whose platform value is not set (e.g. a cluster's OIDC id left empty)."""


Actions = Annotated[tuple[Annotated[str, Field(pattern=r"^[a-z0-9-]+:[A-Za-z0-9*?]+$")], ...], Field(min_length=1)]


class IamActions(BaseModel):
    """`[iam.actions]`: the actions of the statements the public Terraform does not show (from the spec)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cloudwatch_logs_read_only: Actions  # on the manifest's log groups
    lake_formation: Actions  # on "*"
    textract: Actions  # on "*"
    update_secrets: Actions  # on the declared secrets, in every secrets region


PolicyName = Annotated[str, Field(pattern=r"^[A-Za-z0-9+=,.@_/-]+$")]


class IamSettings(BaseModel):
    """The `[iam]` settings: the platform's account, clusters and shared policies (checked on load)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: Annotated[str, Field(pattern=r"^[0-9]{12}$")]
    # "<issuer host>/id/{id}": the EKS cluster's OIDC issuer; {id} from oidc_provider_ids per environment
    oidc_provider: Annotated[str, Field(pattern=r"^[a-z0-9.-]+(/[A-Za-z0-9._-]+)*/\{id\}$")]
    oidc_provider_ids: dict[str, Annotated[str, Field(pattern=r"^[A-Za-z0-9]*$")]]  # "" = not known
    max_session_duration: Annotated[int, Field(ge=3600, le=43200)]
    secrets_regions: Annotated[tuple[Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")], ...],
                               Field(min_length=1)]  # the secrets' region, then their replicas
    label_domain: str
    cadet_repositories: tuple[str, ...]  # images that get the shared `cadet` policy
    managed_policies: dict[Literal[POLICY_KEYS], tuple[PolicyName, ...]]  # type: ignore[valid-type]
    actions: IamActions


@cache
def _packaged() -> dict[str, Any]:
    return tomllib.loads((Path(__file__).parent / "defaults.toml").read_text())["iam"]


def iam_settings(settings: Settings) -> IamSettings:
    """`settings.iam` over the packaged `[iam]` table, table by table (a config file may set one key)."""
    given, base = settings.iam, _packaged()
    merged = {**base, **given}
    for table in ("oidc_provider_ids", "managed_policies", "actions"):
        if isinstance(given.get(table, {}), dict):
            merged[table] = {**base.get(table, {}), **given.get(table, {})}
    try:
        return IamSettings.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in ("iam", *first["loc"]) if part != "[key]")
        raise UsageError(f"settings: {where}: {first['msg']}",
                         hint="see the [iam] table of ap_build/workflow/defaults.toml and docs/workflow.md, IAM") \
            from None


def _tf_list(values: list[str] | tuple[str, ...]) -> str | list[str]:
    """A list as `aws_iam_policy_document` renders it: one value as a string, several de-duplicated and
    in reverse order (the provider's policyDecodeConfigStringList). IAM gives order no meaning."""
    unique = sorted(set(values), reverse=True)
    return unique[0] if len(unique) == 1 else unique


def _statement(sid: str, actions: list[str] | tuple[str, ...], resources: list[str], effect: str = "Allow",
               condition: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"Sid": sid, "Effect": effect, "Action": _tf_list(actions), "Resource": _tf_list(resources)}
    if condition:
        out["Condition"] = condition
    return out


def _s3(path: str) -> str:
    # The platform pastes the entry after `arn:aws:s3:::` as it is; an `s3://` prefix (one corpus manifest)
    # would give a resource that matches nothing, so it is dropped here (docs/workflow.md, differences).
    return path.removeprefix("s3://")


def _names(ident: Identity, settings: Settings) -> tuple[str, str]:
    """(project alias, workflow): the platform aliases the project once (settings.project_alias, also
    behind `Identity.role_name`), for every name below."""
    return ident.name(settings), ident.workflow


def service_account_name(ident: Identity, settings: Settings) -> str:
    return ident.resource_name(settings)


def policy_document(m: model.Manifest, ident: Identity, settings: Settings) -> dict[str, Any]:
    """The workflow's own policy (`airflow-<env>-<project>-<workflow>`): iam-policy.tf's statements."""
    iam, cfg = m.iam, iam_settings(settings)
    project, workflow = _names(ident, settings)
    name = ident.role_name(settings)
    lists = [iam.s3_deny, iam.s3_read_only, iam.s3_read_write, iam.s3_write_only]
    buckets = list(dict.fromkeys(_s3(p).split("/", 1)[0] for paths in lists for p in paths))
    statements: list[dict[str, Any]] = []
    if iam.glue:
        statements.append(_statement("GluePassRole", ["iam:PassRole"], [f"arn:aws:iam::{cfg.account_id}:role/{name}"],
                                     condition={"StringEquals": {"iam:PassedToService": "glue.amazonaws.com"}}))
    if iam.kms:
        statements.append(_statement("KMS", KMS, list(iam.kms)))
    if buckets:
        statements.append(_statement("S3BucketAccess", S3_BUCKET, [f"arn:aws:s3:::{b}" for b in buckets]))
    for sid, actions, paths, effect in (("S3Deny", S3_DENY, iam.s3_deny, "Deny"),
                                        ("S3ReadOnly", S3_READ_ONLY, iam.s3_read_only, "Allow"),
                                        ("S3ReadWrite", S3_READ_WRITE, iam.s3_read_write, "Allow"),
                                        ("S3WriteOnly", S3_WRITE_ONLY, iam.s3_write_only, "Allow")):
        if paths:
            statements.append(_statement(sid, actions, [f"arn:aws:s3:::{_s3(p)}" for p in paths], effect))
    secrets = [f"arn:aws:secretsmanager:{region}:{cfg.account_id}:secret:/airflow/{ident.environment}/{project}/"
               f"{workflow}/*" for region in cfg.secrets_regions]
    statements.append(_statement("SecretsManager", ["secretsmanager:GetSecretValue"], secrets))
    # Not in the public Terraform: the spec's statements, actions from settings (docs/workflow.md, IAM).
    if iam.cloudwatch_logs_read_only:
        statements.append(_statement("CloudWatchLogsReadOnly", cfg.actions.cloudwatch_logs_read_only,
                                     list(iam.cloudwatch_logs_read_only)))
    if iam.lake_formation:
        statements.append(_statement("LakeFormation", cfg.actions.lake_formation, ["*"]))
    if iam.textract:
        statements.append(_statement("Textract", cfg.actions.textract, ["*"]))
    if iam.update_secrets and m.secrets:  # on the declared secrets (a secret's ARN ends in -<6 random chars>)
        declared = [f"{arn[:-1]}{name}-??????" for arn in secrets for name in m.secrets]
        statements.append(_statement("SecretsManagerUpdate", cfg.actions.update_secrets, declared))
    return {"Version": VERSION, "Statement": statements}


def trust_policy(ident: Identity, settings: Settings, source: str = "") -> dict[str, Any]:
    """iam-role-for-service-accounts-eks: the cluster's OIDC provider may assume the role for the
    workflow's service account in the namespace (IRSA)."""
    cfg = iam_settings(settings)
    if not cfg.oidc_provider_ids.get(ident.environment):
        raise IamSettingMissing(
            f"{source or ident.environment}: no OIDC provider id for the {ident.environment} cluster "
            f"(setting iam.oidc_provider_ids.{ident.environment})",
            hint="set it in a --config file: the id at the end of the EKS cluster's OIDC issuer URL")
    host = cfg.oidc_provider.format(id=cfg.oidc_provider_ids[ident.environment])
    subject = f"system:serviceaccount:{settings.namespace}:{service_account_name(ident, settings)}"
    # as the provider writes it: an empty Sid, condition keys sorted (Go's JSON maps)
    return {"Version": VERSION, "Statement": [{
        "Sid": "",
        "Effect": "Allow",
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Principal": {"Federated": f"arn:aws:iam::{cfg.account_id}:oidc-provider/{host}"},
        "Condition": {"StringEquals": {f"{host}:aud": "sts.amazonaws.com", f"{host}:sub": subject}},
    }]}


def attached_policies(m: model.Manifest, cfg: IamSettings, own_arn: str) -> list[str]:
    """iam-role.tf's attachments: the workflow's own policy, kms always, then what the manifest asks for."""
    iam = m.iam
    keys = [f"athena_{iam.athena}"] if iam.athena else []  # athena_write lists athena-read and athena-write
    keys += [k for k in ("bedrock", "glue") if getattr(iam, k)] + ["always"]
    keys += ["textract"] if iam.textract and "textract" in cfg.managed_policies else []  # optional: a statement
    keys += ["cadet"] if m.dag.repository in cfg.cadet_repositories else []
    names = [n for k in keys for n in cfg.managed_policies[k]]
    return [own_arn, *dict.fromkeys(f"arn:aws:iam::{cfg.account_id}:policy/{n}" for n in names)]


def workflow_iam(m: model.Manifest, ident: Identity, settings: Settings, source: str = "") -> dict[str, Any]:
    """Everything `--iam` writes for one workflow (docs/workflow.md, IAM): with `iam.external_role`, only
    the service account annotated with that role (the platform creates no role or policy then)."""
    cfg = iam_settings(settings)
    project, workflow = _names(ident, settings)
    name = ident.role_name(settings)
    role_arn = m.iam.external_role or f"arn:aws:iam::{cfg.account_id}:role/{name}"
    domain = f"airflow.{cfg.label_domain}"
    account = {"namespace": settings.namespace, "name": service_account_name(ident, settings),
               "labels": {f"{domain}/environment": ident.environment, f"{domain}/project": project,
                          f"{domain}/workflow": workflow},
               "annotations": {ROLE_ANNOTATION: role_arn}}
    if m.iam.external_role:
        return {"external_role": role_arn, "role": None, "policy": None, "service_account": account}
    policy_arn = f"arn:aws:iam::{cfg.account_id}:policy/{name}"
    return {
        "external_role": None,
        "role": {"name": name, "arn": role_arn, "max_session_duration": cfg.max_session_duration,
                 "assume_role_policy": trust_policy(ident, settings, source),
                 "policy_arns": attached_policies(m, cfg, policy_arn)},
        "policy": {"name": name, "arn": policy_arn, "document": policy_document(m, ident, settings)},
        "service_account": account,
    }


def render(doc: dict[str, Any]) -> str:
    """The `.iam.json` text: stable, key order as built (statement order is the Terraform's)."""
    return json.dumps(doc, indent=2) + "\n"
