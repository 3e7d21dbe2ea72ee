"""`python_dag: true` manifests: the user's own `dag.py` beside the manifest, copied with the platform's
placeholders replaced (as scripts/workflow_generator/main.py does), pure apart from reading the file."""

from __future__ import annotations

from pathlib import Path

from ap_build.workflow import model
from ap_build.workflow.settings import Identity, Settings


def source_of(manifest: Path) -> Path:
    """`dag.py` beside `workflow.yml`; beside a `<env>__<project>__<workflow>.yml` file, `<that name>.dag.py`."""
    if manifest.name == "workflow.yml":
        return manifest.with_name("dag.py")
    return manifest.with_name(f"{manifest.stem}.dag.py")


def placeholders(m: model.Manifest, ident: Identity, settings: Settings) -> list[tuple[str, str]]:
    """The platform's placeholders, in the order it replaces them (the repository as written, unsanitised;
    the project as in every other name: its alias)."""
    return [
        ("PLACEHOLDER_REPOSITORY_NAME", m.dag.repository),
        ("PLACEHOLDER_REPOSITORY_TAG", m.dag.tag),
        ("PLACEHOLDER_PROJECT", ident.name(settings)),
        ("PLACEHOLDER_WORKFLOW", ident.workflow),
        ("PLACEHOLDER_ENVIRONMENT", ident.environment),
        ("PLACEHOLDER_OWNER", m.tags.owner),
    ]


def render_user_dag(text: str, m: model.Manifest, ident: Identity, settings: Settings) -> str:
    """The user's DAG file with every placeholder replaced, one after the other as the platform does."""
    for placeholder, value in placeholders(m, ident, settings):
        text = text.replace(placeholder, value)
    return text
