"""Checks every generated IAM document against the IAM policy grammar: a JSON Schema of AWS's grammar
(identity and trust policies), and parliament (duo-labs) for the permission policies' actions, resources
and conditions against its own copy of AWS's service reference."""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

with warnings.catch_warnings():  # parliament 1.6.4's regexes are not raw strings (compile-time warnings)
    warnings.simplefilter("ignore", DeprecationWarning)
    from parliament import analyze_policy_string

SCHEMA = Path(__file__).with_name("iam_policy_grammar.schema.json")


@cache
def _validators() -> dict[str, jsonschema.Draft202012Validator]:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return {kind: jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{kind}"})
            for kind in ("identity_policy", "trust_policy")}


def grammar_errors(doc: dict[str, Any]) -> list[str]:
    """The grammar's complaints about one `.iam.json` (its policy and its role's trust policy)."""
    if doc["role"] is None:
        return []
    pairs = [("identity_policy", doc["policy"]["document"]), ("trust_policy", doc["role"]["assume_role_policy"])]
    return [f"{kind}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for kind, policy in pairs for e in _validators()[kind].iter_errors(policy)]


def parliament_findings(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """parliament's findings on the permission policy, as (issue, detail)."""
    if doc["policy"] is None:
        return []
    policy = analyze_policy_string(json.dumps(doc["policy"]["document"]))
    return [(f.issue, str(f.detail)) for f in policy.findings]
