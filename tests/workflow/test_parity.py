"""Parity with the platform: the corpus compiled with the default settings, loaded by DagBag on Airflow
2.10.3 (MWAA's line, .venv-airflow2) and on the Airflow 3 line (.venv), every task's DAG, task and pod
attributes equal to the platform's own (shared/corpus/platform/pods.json.gz), but the allowed differences."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ap_build.workflow.compiler import compile_many
from ap_build.workflow.settings import identify, load_settings
from workflow.parity import compare, load_reference

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "corpus"
DUMP = Path(__file__).with_name("airflow_dump.py")
PYTHONS = {2: ROOT / ".venv-airflow2" / "bin" / "python", 3: Path(sys.executable)}
MWAA_DAGS = "/usr/local/airflow/dags"  # the default kube_config_file's folder, mapped to each DAG folder

pytestmark = [pytest.mark.xdist_group("airflow"),
              pytest.mark.skipif(not (SHARED / "platform" / "pods.json.gz").is_file(), reason="no corpus")]


@pytest.fixture(scope="module")
def dumps(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict]:
    """Compile the corpus for each line and dump it there; both Airflows run at once (one per core)."""
    assert PYTHONS[2].exists(), "no .venv-airflow2: run scripts/setup.sh (it installs Airflow 2.10.3 there)"
    items = [(f, identify(f)) for f in sorted((SHARED / "manifests").glob("*.yml"))]
    procs, outs = {}, {}
    for line, python in PYTHONS.items():
        out = tmp_path_factory.mktemp(f"airflow{line}")
        outcomes = compile_many(items, out / "dags", dataclasses.replace(load_settings(), airflow=line))
        # the 20 python_dag manifests need the user's dag.py, which the corpus does not have
        assert [o.user_dag for o in outcomes if o.problems] == [True] * 20
        outs[line] = out / "dump.json"
        envs = sorted(p for p in (out / "dags").iterdir() if p.is_dir())
        procs[line] = subprocess.Popen([str(python), str(DUMP), "--out", str(outs[line]), "--kube-prefix",
                                        MWAA_DAGS, *map(str, envs)], stderr=subprocess.PIPE, text=True)
    for proc in procs.values():
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]
    return {line: json.loads(path.read_text()) for line, path in outs.items()}


@pytest.mark.parametrize("line", [2, 3])
def test_every_corpus_task_matches_the_platform(dumps: dict[int, dict], line: int) -> None:
    reference = load_reference(SHARED / "platform" / "pods.json.gz")
    got = dumps[line]
    assert got["import_errors"] == {}
    if line == 2:
        assert got["airflow"] == reference["meta"]["versions"]["apache-airflow"]
    report = compare(reference["tasks"], got["tasks"], airflow=line)
    print(f"Airflow {got['airflow']}: {report.text()}")
    assert report.equal == len(reference["tasks"]) == 3948, report.text()
    assert (report.differing, report.missing, report.extra) == (0, [], []), report.text()
