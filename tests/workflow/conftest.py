"""Workflow test fixtures: manifest trees on disk and a session-wide Airflow (slow to import)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def manifest_tree(tmp_path: Path) -> Callable[..., Path]:
    """Write environments/<env>/<project>/<workflow>/workflow.yml under tmp_path and return its path."""

    def write(text: str, env: str = "development", project: str = "my-project", workflow: str = "my-flow") -> Path:
        path = tmp_path / "environments" / env / project / workflow / "workflow.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="session")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Any]:
    """Load a folder with Airflow's own DagBag (Airflow imported once, with a throw-away AIRFLOW_HOME)."""
    home = tmp_path_factory.mktemp("airflow-home")
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
    from airflow.models.dagbag import DagBag

    def load(folder: Path) -> Any:
        return DagBag(dag_folder=str(folder))

    return load
