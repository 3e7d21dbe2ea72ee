"""Hostile input to `ap-build workflow validate|compile|show|schema`, in-process through the real entry point:
a clean exit code (0/1/2), `error:` + `hint:` or a file:line problem, never a traceback, never a write
outside `-o`, never raw control characters on the terminal; memory- and time-bounded."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ap_build.workflow.validate import MAX_BYTES

GOOD = """\
dag:
  repository: ministryofjustice/example
  tag: v1
  env_vars:
    MODE: daily
maintainers: [octocat]
tags:
  business_unit: HQ
  owner: someone@justice.gov.uk
"""
LAUGHS = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
) + "\n" + GOOD.replace("  tag: v1\n", "  tag: v1\n  compute_profile: *a9\n")


def write(root: Path, text: str | bytes, env: str = "development", project: str = "proj",
          workflow: str = "flow") -> Path:
    path = root / "environments" / env / project / workflow / "workflow.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def snapshot(root: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every entry under root: its mode and content (files) or link target (symlinks)."""
    found: dict[str, tuple[int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st_ = p.lstat()
            if p.is_symlink():
                found[str(p.relative_to(root))] = (st_.st_mode, os.readlink(p))
            elif p.is_file() and not p.is_fifo():
                found[str(p.relative_to(root))] = (st_.st_mode, p.read_bytes())
            else:
                found[str(p.relative_to(root))] = (st_.st_mode, b"")
    return found


def assert_clean(r, allowed: set[int] = frozenset({0, 1, 2})) -> None:  # type: ignore[assignment]
    assert r.exit_code in allowed, (r.exit_code, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout and "internal error" not in r.stderr, r.stderr
    if r.exit_code == 2:
        assert r.stderr.startswith("error: "), r.stderr
    for stream in (r.stdout, r.stderr):
        assert not any(c in stream for c in "\x00\x1b\x07\x08\r"), repr(stream)


@dataclass
class Case:
    name: str
    setup: Callable[[Path], list[str]]  # writes files under the root, returns the CLI arguments
    exit_code: int
    expect: str  # in stdout + stderr


def _tree(text: str | bytes, *args: str, **where: str) -> Callable[[Path], list[str]]:
    def setup(root: Path) -> list[str]:
        path = write(root, text, **where)
        return [a.replace("{file}", str(path)).replace("{root}", str(root)) for a in args]
    return setup


def _two_files(root: Path) -> list[str]:
    write(root, GOOD, workflow="good")
    write(root, "? [a, b]\n: 1\n" + GOOD, workflow="complex-key")
    write(root, "? {a: 1}\n: 2\n" + GOOD, workflow="map-key")
    return ["workflow", "validate", str(root / "environments")]


def _fifo(root: Path) -> list[str]:
    write(root, GOOD, workflow="good")
    fifo = root / "environments" / "development" / "proj" / "pipe" / "workflow.yml"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    return ["workflow", "validate", str(root / "environments")]


def _output_is_a_file(root: Path) -> list[str]:
    path = write(root, GOOD)
    (root / "out").write_text("not a folder")
    return ["workflow", "compile", str(path), "-o", str(root / "out")]


CASES = [
    Case("billion laughs", _tree(LAUGHS, "workflow", "validate", "{file}"), 1, 'a "billion laughs"'),
    Case("recursive alias", _tree("a: &a [*a]\n" + GOOD, "workflow", "validate", "{file}"), 1, "recursive"),
    Case("complex keys do not stop the tree", _two_files, 1, "a list cannot be a key"),
    Case("month 13", _tree(GOOD.replace("  tag: v1\n", "  tag: v1\n  start_date: 2026-13-01\n"),
                           "workflow", "validate", "{file}"), 1, "'2026-13-01' is not a date or time"),
    Case("!!int x", _tree(GOOD.replace("retries", "x").replace("  tag: v1\n", "  tag: v1\n  retries: !!int x\n"),
                          "workflow", "validate", "{file}"), 1, "'x' is not a whole number"),
    Case("python tag", _tree(GOOD + "x: !!python/object/apply:os.system ['touch {root}/pwned']\n",
                             "workflow", "validate", "{file}"), 1, "could not determine a constructor"),
    Case("too big", _tree(GOOD + "# " + "x" * MAX_BYTES + "\n", "workflow", "validate", "{file}"), 1,
         "more than 262,144 bytes"),
    Case("not UTF-8", _tree(GOOD.encode() + b"x: \xff\xfe\n", "workflow", "validate", "{file}"), 1,
         ":10:4: not UTF-8 text (byte 0xff)"),
    Case("deep nesting", _tree(GOOD + "x:\n" + "- " * 5000 + "x\n", "workflow", "validate", "{file}"), 1,
         "maximum nesting depth"),
    Case("deep block mappings", _tree(GOOD.replace("    MODE: daily\n", "    MODE: daily\n  tasks:\n    deep:\n"
                                                   + "".join("  " * (i + 3) + f"k{i}:\n" for i in range(480))
                                                   + "  " * 483 + "x\n"), "workflow", "validate", "{file}"),
         1, "dag.tasks.deep.k0: unknown key 'k0'"),
    Case("deep template", _tree(GOOD.replace("MODE: daily", "MODE: '{{ " + "(" * 3000 + "ds" + ")" * 3000 + " }}'"),
                                "workflow", "validate", "{file}"), 1, "template expression nests too deeply"),
    Case("deep through aliases", _tree("\n".join(["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 70)])
                                       + "\n" + GOOD, "workflow", "validate", "{file}"), 1,
         "values nest deeper than 64 levels"),
    Case("FIFO in the tree", _fifo, 1, "not a regular file"),
    Case("5,000 refused templates", _tree(GOOD.replace("    MODE: daily\n", "".join(
        f"    K{i}: '{{{{ conn }}}}'\n" for i in range(5_000))), "workflow", "validate", "{file}"), 1,
        "more templates are refused (not shown) (hint: fix the first 100 and validate again)"),
    Case("20,000 unknown keys", _tree(GOOD.replace("    MODE: daily\n", "    MODE: daily\n" + "".join(
        f"  k{i}: 1\n" for i in range(20_000))), "workflow", "validate", "{file}"), 1,
        "19900 more problem(s) not shown"),
    Case("secret via template", _tree(GOOD.replace("MODE: daily", 'MODE: "{{ conn.slack_api_default.password }}"'),
                                      "workflow", "validate", "{file}"), 1, "template name `conn` is not allowed"),
    Case("variable via env name", _tree(GOOD.replace("MODE: daily", '"{{ var.value.token }}": x'),
                                        "workflow", "validate", "{file}"), 1, "template name `var` is not allowed"),
    Case("folder not a dag_id", _tree(GOOD, "workflow", "validate", "{file}", project="my project"), 1,
         "project folder 'my project' cannot be part of an Airflow dag_id"),
    Case("folder with ..", _tree(GOOD, "workflow", "validate", "{file}", workflow="a..b"), 1,
         "dag_id 'proj.a..b' contains `..`"),
    Case("folder with markup", _tree(GOOD, "workflow", "validate", "{file}", project="[bold]x[red]"), 1,
         "project folder '[bold]x[red]' cannot be part"),
    Case("--project ../..", _tree(GOOD, "workflow", "compile", "{file}", "-o", "{root}/out", "--project", "../.."),
         2, "project '../..' is not a single folder name"),
    Case("--workflow a/../../b", _tree(GOOD, "workflow", "compile", "{file}", "-o", "{root}/out", "--workflow",
                                       "a/../../b"), 2, "is not a single folder name"),
    Case("--project with newline", _tree(GOOD, "workflow", "compile", "{file}", "-o", "{root}/out", "--project",
                                         "a\nb"), 1, "cannot be part of an Airflow dag_id"),
    Case("--environment markup", _tree(GOOD, "workflow", "validate", "{file}", "--environment", "[/]"), 2,
         "environment '[/]' is not one of"),
    Case("--jobs -1", _tree(GOOD, "workflow", "compile", "{file}", "-o", "{root}/out", "--jobs", "-1"), 2,
         "--jobs -1: must be 0"),
    Case("--jobs huge", _tree(GOOD, "workflow", "compile", "{file}", "-o", "{root}/out", "--jobs", "100000"), 2,
         "--jobs 100000"),
    Case("-o is a file", _output_is_a_file, 2, "not a folder"),
    Case("show a tree", lambda root: ["workflow", "show", str(_two_files(root)[-1])], 2,
         "3 manifests; show takes one"),
    Case("device as a manifest", lambda root: ["workflow", "validate", "/dev/zero", "--environment", "test",
                                               "--project", "a", "--workflow", "b"], 1, "not a regular file"),
    Case("--format markup", _tree(GOOD, "workflow", "validate", "{file}", "--format", "[/]"), 2,
         "unknown format '[/]'"),
    Case("missing path with markup", lambda root: ["workflow", "validate", f"{root}/[/]\x1b[31m"], 2,
         "no such file or directory"),
    Case("--config not TOML", _tree(GOOD, "workflow", "show", "{file}", "--config", "{file}"), 2, "error:"),
    Case("schema with an argument", lambda root: ["workflow", "schema", "[/]"], 2, "error:"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case(case: Case, cli, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    args = case.setup(root)
    before = snapshot(tmp_path)
    r = cli(*args)
    assert_clean(r)
    assert r.exit_code == case.exit_code, (r.stdout, r.stderr)
    assert case.expect in r.stdout + r.stderr, (r.stdout, r.stderr)
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("root/out/")} == before  # nothing else changed


def test_complex_key_is_one_problem_and_the_rest_of_the_tree_is_validated(cli, tmp_path: Path) -> None:
    args = _two_files(tmp_path)
    r = cli(*args, "--format", "json")
    report = json.loads(r.stdout)
    assert (r.exit_code, report["count"], report["invalid"]) == (1, 3, 2)
    by_name = {Path(f["file"]).parent.name: f for f in report["files"]}
    assert by_name["good"]["valid"]
    [problem] = by_name["complex-key"]["problems"]
    assert (problem["line"], problem["column"], problem["message"]) == (1, 3, "a list cannot be a key")
    assert by_name["map-key"]["problems"][0]["message"] == "a mapping cannot be a key"


def test_show_prints_manifest_text_inert(cli, tmp_path: Path, monkeypatch) -> None:
    from ap_build.ui import out

    monkeypatch.setattr(out, "width", 400)  # one line per env var, not folded at 80 columns
    hostile = "[/] [bold red]x\x1b[31mred\x00nul\x07\u202egnirts\u2028next\nline"
    path = write(tmp_path, yaml.safe_dump({**yaml.safe_load(GOOD), "dag": {
        **yaml.safe_load(GOOD)["dag"], "env_vars": {"HOSTILE": hostile}}}))
    r = cli("workflow", "show", str(path))
    assert_clean(r, {0})
    [line] = [x for x in r.stdout.splitlines() if "HOSTILE=" in x]
    assert line.endswith("HOSTILE=[/] [bold red]x\\x1b[31mred\\x00nul\\x07\\u202egnirts\\u2028next\\nline")


def test_billion_laughs_stays_within_memory_and_time(tmp_path: Path) -> None:
    """The real console script under a 1 GiB address-space limit: refused fast, never out of memory."""
    path = write(tmp_path, LAUGHS)
    limit = 1 << 30

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run([str(Path(sys.executable).parent / "ap-build"), "workflow", "validate", str(path)],
                          capture_output=True, text=True, timeout=60, preexec_fn=cap)
    assert proc.returncode == 1, proc.stderr
    assert f"{path}:6:5: aliases expand this value beyond 100,000 values" in proc.stdout


# ---- property: generated hostile text anywhere in a manifest, a path or an option --------------------------

PIECES = st.sampled_from(["[/]", "[bold]", "[link=x]", "\x1b[31m", "\x00", "\x07", "\r", "\n", "\t", "\u202e",
                          "\u2028", "{{ conn.x.password }}", "{{ ds }}", "{% raw %}", "{{", "}}", "{%", "{#", "../",
                          "..", "/", "\\", "'", '"', "&a", "*a", ": ", "- ", "# ", "%", "é", ""])
TEXT = st.lists(st.one_of(PIECES, st.text(max_size=6)), min_size=1, max_size=5).map("".join)
NAME = st.one_of(st.sampled_from(["proj", "flow", "a.b", "a-b"]), TEXT.filter(lambda s: s not in ("", ".", "..")))


def _manifest(value: str, key: str, tag: str, channel: str, task: str) -> str:
    data = yaml.safe_load(GOOD)
    data["dag"]["tag"] = tag
    data["dag"]["env_vars"] = {"PLAIN": value, key: "x"}
    data["dag"]["params"] = {"p": value}
    data["dag"]["tasks"] = {task: {"env_vars": {"T": value}}}
    data["notifications"] = {"slack_channel": channel}
    return yaml.safe_dump(data, allow_unicode=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=TEXT, key=TEXT, tag=TEXT, channel=TEXT, task=TEXT, project=NAME, workflow=NAME,
       via_option=st.booleans(), raw=st.booleans())
def test_generated_hostile_input_never_crashes_or_escapes(cli, value, key, tag, channel, task, project, workflow,
                                                          via_option, raw) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # four levels deep, so that up to four `..` still land inside the snapshot
        outer = Path(tmp)
        root = outer / "a" / "b" / "c" / "root"
        (outer / "victim").mkdir()
        (outer / "victim" / "keep.txt").write_text("keep")
        text = (value if raw else _manifest(value, key, tag, channel, task))
        if via_option:
            path = root / "src" / "manifest.yml"
            path.parent.mkdir(parents=True)
            extra = ["--environment", "development", "--project", project, "--workflow", workflow]
        else:
            safe = [n if "/" not in n and "\x00" not in n and n not in (".", "..") else "x"
                    for n in (project, workflow)]
            path = root / "src" / "environments" / "development" / safe[0] / safe[1] / "workflow.yml"
            try:
                path.parent.mkdir(parents=True)
            except (OSError, ValueError):  # a name the filesystem refuses (too long, not encodable)
                return
            extra = []
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        before = snapshot(outer)
        for args in (["workflow", "validate", str(path), *extra],
                     ["workflow", "compile", str(path), "-o", str(root / "out"), *extra],
                     ["workflow", "show", str(path), *extra]):
            r = cli(*args)
            assert_clean(r)
            if r.exit_code == 1:  # validation problems: file:line:column lines
                assert re.search(r":\d+:\d+: ", r.stdout + r.stderr), (r.stdout, r.stderr)
        after = snapshot(outer)
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        assert all(k.startswith("a/b/c/root/out") for k in changed), changed
        for k in changed:
            parts = Path(k).relative_to("a/b/c/root/out").parts
            assert len(parts) <= 3 and ".." not in parts
