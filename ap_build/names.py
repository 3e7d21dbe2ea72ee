"""The platform's naming rules, each written once (pure).

A workflow at environments/<environment>/<project>/<workflow>/workflow.yml is known by names derived
from its project (already aliased: `Identity.name`) and workflow folder. Compile, IAM, show, run and
migrate all take them from here, so a rule can change in one place.
"""

from __future__ import annotations

SECRET_PREFIX = "SECRET_"


def dag_id(project: str, workflow: str) -> str:
    """The Airflow dag_id: `<project>.<workflow>`."""
    return f"{project}.{workflow}"


def resource_name(project: str, workflow: str) -> str:
    """`<project>-<workflow>`: the service account, the base of every pod name, the prefix of its secrets."""
    return f"{project}-{workflow}"


def secret_resource(project: str, workflow: str, secret: str) -> str:
    """The Kubernetes secret a manifest secret is read from: `<project>-<workflow>-<secret>`."""
    return f"{resource_name(project, workflow)}-{secret}"


def role_name(environment: str, project: str, workflow: str) -> str:
    """The IAM role (and policy) name: `airflow-<environment>-<project>-<workflow>`."""
    return f"airflow-{environment}-{resource_name(project, workflow)}"


def secret_env(secret: str) -> str:
    """The env var a manifest secret becomes on the pod: `api-key` -> `SECRET_API_KEY`."""
    return SECRET_PREFIX + secret.upper().replace("-", "_")


def secret_from_env(var: str) -> str:
    """The manifest secret an env var names (the inverse of `secret_env`): `SECRET_API_KEY` -> `api-key`."""
    return var.removeprefix(SECRET_PREFIX).lower().replace("_", "-")


def ecr_repository(github_repository: str) -> str:
    """The platform's ECR repository for a GitHub repository `<org>/<repo>`: lower-cased, `_` as `-`."""
    return github_repository.lower().replace("_", "-")


def image_ref(registry: str, repository: str, tag: str) -> str:
    """The image a workflow's pods run: `<registry>/<ECR repository of the GitHub repository>:<tag>`."""
    return f"{registry}/{ecr_repository(repository)}:{tag}"
