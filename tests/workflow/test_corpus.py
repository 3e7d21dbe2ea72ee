"""The acceptance set: the platform's 394 real manifests validate and compile, and Airflow loads the result."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ap_build.workflow.codegen import render_dag
from ap_build.workflow.settings import identify, load_settings
from ap_build.workflow.validate import validate_file

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "manifests"

pytestmark = [pytest.mark.xdist_group("airflow"),
              pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no corpus at {CORPUS}")]


def test_every_real_manifest_validates_and_compiles(tmp_path: Path, dagbag) -> None:
    files = sorted(CORPUS.glob("*.yml"))
    settings = dataclasses.replace(load_settings(), airflow=3)  # the Airflow line installed here
    invalid, user_dags, compiled = [], 0, 0
    for f in files:
        result = validate_file(f, identify(f))
        if result.problems:
            invalid.append(str(result.problems[0]))
            continue
        if result.user_dag:
            user_dags += 1
            continue
        ident = result.identity
        target = tmp_path / ident.environment / ident.project / f"{ident.workflow}.py"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_dag(result.manifest, ident, settings, source=f.name))
        compiled += 1
    print(f"corpus: {len(files)} manifests, {compiled} compiled, {user_dags} user-supplied DAGs")
    assert invalid == []
    assert len(files) == 394 and user_dags == 20 and compiled == 374
    loaded = 0
    for env_dir in sorted(tmp_path.iterdir()):  # each environment has its own Airflow
        bag = dagbag(env_dir)
        assert bag.import_errors == {}, list(bag.import_errors.items())[:2]
        loaded += len(bag.dags)
    assert loaded == compiled
