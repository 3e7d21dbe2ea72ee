"""requirements.txt pins checked against the base's Python and platform with uv, on the real index (PyPI)."""

from __future__ import annotations

import json

from ap_build.migrate.pins import PinProblem, check_pins, check_together, parse_pins, proposal
from ap_build.migrate.versions import Target

from .conftest import tree

PY313 = Target("python", "3.13", "x86_64-manylinux_2_40", "test")
OLD = "numpy==1.15.2\npandas==1.5.1  # the era's pandas\npyarrow==0.10.0\nrequests==2.20.0\ndocopt==0.6.2\n"


def test_old_compiled_pins_are_named_with_the_nearest_version_that_installs() -> None:
    report = check_pins(OLD + "-e git+https://github.com/org/etl_manager.git#egg=etl_manager\n", PY313)
    assert report.checked and report.summary.startswith("checked 5 pin(s) with uv for Python 3.13 on "
                                                        "x86_64-manylinux_2_40, index ")
    got = {p.pin.name: (p.pin.line, p.nearest) for p in report.problems}
    # the first releases with CPython 3.13 wheels
    assert got == {"numpy": (1, "2.1.0"), "pandas": (2, "2.2.3"), "pyarrow": (3, "18.0.0")}
    numpy = report.problems[0]
    assert "no wheel for Python 3.13 on x86_64-manylinux_2_40 (wheels only for cp27, cp34, cp35, cp36, cp37)" \
        in numpy.reason and "compiler" in numpy.reason
    assert [p.name for p in report.source_builds] == ["docopt"]  # an sdist only: builds if pure Python
    assert report.skipped == ["requirements.txt:6: -e git+https://github.com/org/etl_manager.git#egg=etl_manager "
                              "(not a version pin: not checked)"]
    new = proposal(OLD, report.problems)
    assert new == "numpy==2.1.0\npandas==2.2.3  # the era's pandas\npyarrow==18.0.0\nrequests==2.20.0\ndocopt==0.6.2\n"


def test_requires_python_that_excludes_the_base() -> None:
    report = check_pins("numpy==2.3.0\n", Target("python", "3.10", "x86_64-manylinux_2_39", "test"))
    (problem,) = report.problems
    assert problem.reason == "its Requires-Python (>=3.11) excludes Python 3.10"
    assert problem.nearest == "2.2.6"  # no newer numpy supports 3.10: the highest older one


def test_not_checked_says_why() -> None:
    assert check_pins(OLD, PY313, offline_reason="--offline").summary == "not checked: --offline"
    unknown = check_pins(OLD, Target("python", "", "", "not known: no engine"))
    assert unknown.summary == "not checked: the base's Python version is not known (not known: no engine)"
    down = check_pins("numpy==1.15.2\n", PY313, environ={"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "HOME": "/tmp",
                                                         "PATH": "/usr/bin:/bin"})
    assert not down.checked
    assert down.summary.startswith("not checked: the index http://127.0.0.1:9/simple could not be reached (")


def test_parse_pins() -> None:
    pins, index, skipped = parse_pins("--index-url https://example.org/simple\nA_b[x]==1.0 ; python_version<'4'\n"
                                      "c>=2\nd @ https://x/d.whl\n# comment\n-r other.txt\n"
                                      "e==2.0 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n")
    assert [(p.line, p.key, p.raw) for p in pins] == [(2, "a-b", "A_b[x]==1.0 ; python_version<'4'"),
                                                      (7, "e", "e==2.0")]  # a hashed pin (pip-compile's)
    assert index == ["--index-url https://example.org/simple"]
    assert [s.split(":")[1] for s in skipped] == ["4", "6"]


def test_plan_names_the_pins_and_upgrade_pins_writes_the_proposal(make_repo, cli) -> None:
    """Against the platform's published base (Python 3.12, as its contract states: not in this engine)."""
    repo = make_repo("python_old_pins")
    before = tree(repo)
    r = cli("migrate", str(repo))
    assert r.exit_code == 0, r.stderr
    err = " ".join(r.stderr.split())
    assert "Python 3.6 (the legacy `FROM python:3.6`) -> Python 3.12 (the new base " in err
    assert "pin: requirements.txt:1: numpy==1.15.2 cannot install: no wheel for Python 3.12 on " \
        "x86_64-manylinux_2_39" in err and "nearest that installs: numpy==1.26.0" in err
    assert "pyarrow==0.10.0 cannot install" in err and "requests==2.20.0" not in err
    assert tree(repo) == before
    r = cli("migrate", str(repo), "--yes", "--upgrade-pins", "--json")
    assert r.exit_code == 0, r.stderr
    pins = json.loads(r.stdout)["pins"]
    assert [(p["requirement"], p["nearest"]) for p in pins["problems"]] == [
        ("numpy==1.15.2", "1.26.0"), ("pandas==1.5.1", "2.1.1"), ("pyarrow==0.10.0", "14.0.0")]
    assert (repo / "requirements.txt").read_text().splitlines()[:4] == [
        "numpy==1.26.0", "pandas==2.1.1", "pyarrow==14.0.0", "requests==2.20.0"]
    md = (repo / "MIGRATION.md").read_text()
    assert "requirements.txt:2: pandas==1.5.1 cannot install" in md
    assert "uv resolved the proposed pins together, with their dependencies, for Python 3.12." in md
    diff = md.split("```diff\n", 1)[1].split("```", 1)[0]
    assert "   -numpy==1.15.2\n   -pandas==1.5.1\n   -pyarrow==0.10.0\n   +numpy==1.26.0\n" in diff
    assert "+++ b/requirements.txt" in diff


def test_a_proposal_is_checked_as_a_whole() -> None:
    assert check_together("numpy==2.1.0\npandas==2.2.3\n", PY313) == \
        "uv resolved the proposed pins together, with their dependencies, for Python 3.13."
    # pydantic 2.6.4 needs exactly pydantic-core 2.16.3: moving only pydantic-core (it has no cp313 wheel) breaks it
    said = check_together("pydantic==2.6.4\npydantic-core==2.20.0\n", PY313)
    assert said.startswith("The proposed pins do not resolve together for Python 3.13 (uv: Because pydantic==2.6.4 "
                           "depends on pydantic-core==2.16.3")
    assert said.endswith("adjust the pins it names before building.")


def test_proposal_of_a_hashed_file_drops_the_moved_pins_old_hashes() -> None:
    text = ("numpy==1.15.2 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
            "requests==2.20.0 \\\n    --hash=sha256:cc\n")
    pins, _, skipped = parse_pins(text)
    assert [(p.line, p.raw) for p in pins] == [(1, "numpy==1.15.2"), (4, "requests==2.20.0")] and skipped == []
    moved = proposal(text, [PinProblem(pins[0], "no wheel", "2.1.0")])
    assert moved == "numpy==2.1.0\nrequests==2.20.0 \\\n    --hash=sha256:cc\n"
