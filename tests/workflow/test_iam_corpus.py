"""`--iam` over every real manifest: each document fits the IAM policy grammar, and the platform's rules
hold (kms always, athena write = read + write, trust subject = service account, external roles)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ap_build.workflow.iam import workflow_iam
from ap_build.workflow.settings import identify, load_settings
from ap_build.workflow.validate import validate_file
from workflow.iam_grammar import grammar_errors, parliament_findings

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "manifests"
SHARED = "arn:aws:iam::593291632749:policy/airflow-service/"
# The platform's own policy does these two things; kept for parity (docs/workflow.md, IAM differences).
PLATFORM_QUIRKS = {("UNKNOWN_ACTION", "Unknown action s3:CreateMultipartUpload"),
                   ("RESOURCE_MISMATCH", "[{'action': 's3:ListAllMyBuckets', 'required_format': '*'}]")}

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no corpus at {CORPUS}")


def test_every_corpus_workflow_gets_grammatical_platform_iam() -> None:
    settings = load_settings()  # the packaged values: no manifest needs a setting of its own
    seen: Counter[str] = Counter()
    problems: list[str] = []
    for path in sorted(CORPUS.glob("*.yml")):
        result = validate_file(path, identify(path))
        assert result.problems == [], result.problems
        seen["python_dag"] += result.user_dag  # their IAM too: Terraform reads every workflow.yml
        m, ident = result.manifest, result.identity
        doc = workflow_iam(m, ident, settings, source=path.name)
        json.dumps(doc)
        account = doc["service_account"]
        if m.iam.external_role:
            seen["external role"] += 1
            assert doc["role"] is None and account["annotations"]["eks.amazonaws.com/role-arn"] == m.iam.external_role
            continue
        seen["role"] += 1
        role = doc["role"]
        problems += [f"{path.name}: {e}" for e in grammar_errors(doc)]
        problems += [f"{path.name}: {f}" for f in parliament_findings(doc) if f not in PLATFORM_QUIRKS]
        assert len(role["name"]) <= 64 and account["annotations"]["eks.amazonaws.com/role-arn"] == role["arn"]
        condition = role["assume_role_policy"]["Statement"][0]["Condition"]["StringEquals"]
        subject = next(v for k, v in condition.items() if k.endswith(":sub"))
        assert subject == f"system:serviceaccount:mwaa:{account['name']}"
        arns = role["policy_arns"]
        assert arns[0] == doc["policy"]["arn"] and SHARED + "kms" in arns
        assert (SHARED + "athena-read" in arns) == bool(m.iam.athena)
        assert (SHARED + "athena-write" in arns) == (m.iam.athena == "write")
        sids = [s["Sid"] for s in doc["policy"]["document"]["Statement"]]
        assert "SecretsManager" in sids and ("GluePassRole" in sids) == m.iam.glue
    assert problems == []
    assert seen == {"role": 348, "external role": 46, "python_dag": 20}, seen
