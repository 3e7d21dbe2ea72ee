"""The IAM role (IRSA) and policy of one workflow, exactly what its manifest asks for (pure)."""

from __future__ import annotations

from typing import Any

from ap_build.workflow import model
from ap_build.workflow.settings import Identity, Settings

S3_READ = ["s3:GetObject", "s3:GetObjectAcl", "s3:GetObjectVersion"]
S3_WRITE = ["s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:DeleteObject", "s3:DeleteObjectVersion",
            "s3:PutObject", "s3:PutObjectAcl", "s3:PutObjectTagging", "s3:RestoreObject"]
S3_DENY = ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectAcl",
           "s3:PutObject", "s3:PutObjectAcl", "s3:RestoreObject"]


def _s3(path: str) -> str:
    return path.removeprefix("s3://")


def policy_document(m: model.Manifest, ident: Identity, settings: Settings) -> dict[str, Any] | None:
    """The role and its policy; None when the manifest names an external role."""
    iam = m.iam
    if iam.external_role:
        return None
    role = ident.role_name(settings)
    account, region = settings.iam_account_id, settings.regions[ident.environment]
    statements: list[dict[str, Any]] = []

    def add(sid: str, actions: list[str], resources: list[str], effect: str = "Allow", **extra: Any) -> None:
        statements.append({"Sid": sid, "Effect": effect, "Action": actions, "Resource": resources, **extra})

    lists = {"S3Deny": iam.s3_deny, "S3ReadOnly": iam.s3_read_only, "S3ReadWrite": iam.s3_read_write,
             "S3WriteOnly": iam.s3_write_only}
    buckets = sorted({_s3(p).split("/", 1)[0] for paths in lists.values() for p in paths})
    if buckets:
        add("S3ListBuckets", ["s3:GetBucketLocation", "s3:ListAllMyBuckets", "s3:ListBucket"],
            [f"arn:aws:s3:::{b}" for b in buckets])
    actions = {"S3Deny": S3_DENY, "S3ReadOnly": S3_READ, "S3ReadWrite": S3_READ + S3_WRITE, "S3WriteOnly": S3_WRITE}
    for sid, paths in lists.items():
        if paths:
            add(sid, actions[sid], [f"arn:aws:s3:::{_s3(p)}" for p in paths], "Deny" if sid == "S3Deny" else "Allow")
    if iam.kms:
        add("KMS", ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
            list(iam.kms))
    if iam.cloudwatch_logs_read_only:
        add("CloudWatchLogsReadOnly", ["logs:DescribeLogStreams", "logs:FilterLogEvents", "logs:GetLogEvents"],
            list(iam.cloudwatch_logs_read_only))
    if iam.glue:
        add("GluePassRole", ["iam:PassRole"], [f"arn:aws:iam::{account}:role/{role}"],
            Condition={"StringEquals": {"iam:PassedToService": "glue.amazonaws.com"}})
    if iam.textract:
        add("Textract", ["textract:AnalyzeDocument", "textract:GetDocumentAnalysis",
                         "textract:StartDocumentAnalysis"], ["*"])
    if iam.lake_formation:
        add("LakeFormation", ["lakeformation:GetDataAccess"], ["*"])
    path = f"/airflow/{ident.environment}/{ident.project}/{ident.workflow}"
    prefix = f"arn:aws:secretsmanager:{region}:{account}:secret:{path}"
    add("SecretsManagerRead", ["secretsmanager:GetSecretValue"], [f"{prefix}/*"])
    if iam.update_secrets and m.secrets:
        add("SecretsManagerWrite", ["secretsmanager:PutSecretValue", "secretsmanager:UpdateSecret"],
            [f"{prefix}/{s}-*" for s in m.secrets])
    managed = []
    if iam.athena:
        managed.append(settings.managed_policies[f"athena_{iam.athena}"])
    for flag in ("bedrock", "glue"):
        if getattr(iam, flag):
            managed.append(settings.managed_policies[flag])
    provider = settings.eks_oidc_provider
    service_account = f"{ident.name(settings)}-{ident.workflow}"
    return {
        "role": {
            "RoleName": role,
            "MaxSessionDuration": 43200,
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/{provider}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {f"{provider}:sub": f"system:serviceaccount:{settings.namespace}:"
                                                                  f"{service_account}",
                                               f"{provider}:aud": "sts.amazonaws.com"}},
            }]},
            "ManagedPolicies": managed,
        },
        "policy": {"PolicyName": role, "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}},
    }
