"""Which GitHub workflows are legacy release workflows, recognised by what they do, not by name (pure).

The legacy templates shipped `.github/workflows/ecr_push.yml`, but real repositories renamed or rewrote it
(`ecr-build-and-push.yml`, ...). A workflow is a legacy release workflow when it pushes to the legacy ECR:
it uses the Data Engineering build-and-push or cross-account actions, assumes the legacy release role
(Data Engineering's account, or the `AWS_ECR_PUSH_ROLE` secret those actions took), or uses `DE_ECR`.
"""

from __future__ import annotations

import re

WORKFLOW_DIR = ".github/workflows/"
LEGACY_WORKFLOW = ".github/workflows/ecr_push.yml"  # the name the legacy templates gave it
LEGACY_ACCOUNT = "189157455002"  # Data Engineering's AWS account: the legacy release roles live there

# (pattern, what it shows): matched on a workflow's lines outside comments.
_EVIDENCE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"moj-analytical-services/actions-build-and-push-to-ecr\b"),
     "pushes with moj-analytical-services/actions-build-and-push-to-ecr (the legacy ECR)"),
    (re.compile(r"moj-analytical-services/actions-cross-account-ecr\w*\b"),
     "shares the image with moj-analytical-services/actions-cross-account-ecr (the legacy ECR)"),
    (re.compile(rf"arn:aws:iam::{LEGACY_ACCOUNT}:role/"), "assumes a legacy release role (account "
     f"{LEGACY_ACCOUNT})"),
    (re.compile(r"role-to-assume:\s*\$\{\{\s*secrets\.AWS_ECR_PUSH_ROLE\s*\}\}"),
     "assumes the legacy release role (secrets.AWS_ECR_PUSH_ROLE)"),
    (re.compile(r"\bDE_ECR\b"), "uses DE_ECR (the legacy ECR registry)"),
    (re.compile(r"\b\d{12}\.dkr\.ecr\.eu-west-1\.amazonaws\.com\b"), "pushes to an ECR registry in eu-west-1"),
)


def is_workflow(path: str) -> bool:
    """A GitHub Actions workflow file (directly under .github/workflows)."""
    name = path[len(WORKFLOW_DIR):] if path.startswith(WORKFLOW_DIR) else ""
    return bool(name) and "/" not in name and name.endswith((".yml", ".yaml"))


def evidence(text: str) -> list[str]:
    """What in a workflow's text shows it is a legacy release workflow (empty: it is not one)."""
    found: list[str] = []
    for line in text.splitlines():
        code = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        for pattern, what in _EVIDENCE:
            if pattern.search(code) and what not in found:
                found.append(what)
    return found


def legacy_release_workflows(files: dict[str, bytes], listing: set[str] | frozenset[str]) -> dict[str, list[str]]:
    """path -> evidence, for every legacy release workflow of a repository (sorted by path)."""
    out: dict[str, list[str]] = {}
    for path in sorted(p for p in listing if is_workflow(p)):
        found = evidence(files.get(path, b"").decode("utf-8", "replace"))
        if not found and path == LEGACY_WORKFLOW:
            found = ["the legacy templates' release workflow (by its name)"]
        if found:
            out[path] = found
    return out
