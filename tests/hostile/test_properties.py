"""Property test: generated hostile text (Rich markup, control characters, newlines, NULs, traversal
sequences) as paths, ignore lines, recorded state and option values, fed to the CLI in-process.

For every input: the exit code is 0, 1 or 2; there is no traceback and no `internal error`; a failure
starts with `error:`; and nothing outside the target folder changes (a snapshot of a temp root around
it). Bounded: few examples, a deadline per example, and a cap on the memory the run may add.
"""

from __future__ import annotations

import contextlib
import os
import resource
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.trivydb import write_trivy_db

from ap_build.scaffold.state import STATE_PATH

from .support import assert_clean, image_archive, snapshot

FRAGMENTS = ["[/]", "[bold]", "[red]x[/red]", "[link=file:///etc/passwd]", "../", "..", "/", "\x00", "\n", "\r",
             "\t", "\x1b[31m", "\x1b]8;;x\x07", "${{ secrets.X }}", "{{ conn.x.password }}", "{0}", "%s", "'", '"',
             "\\", "#", ": ", "- ", "*", "CVE-2024-1234", " exp:2026-13-01", "é", "\u202e", "\ufeff"]
hostile = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(st.characters(codec="utf-8"), max_size=4)), max_size=6,
).map("".join)
# a string argv can carry (the OS cannot pass a NUL in an argument); NULs still go into files
argv_text = hostile.map(lambda s: s.replace("\x00", ""))
segment = argv_text.map(lambda s: s.replace("/", "_")).filter(lambda s: s not in ("", ".", ".."))

PROPERTY = settings(max_examples=25, deadline=5000, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MAX_RSS_GROWTH_KB = 400_000


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trivy_db(tmp_path_factory.mktemp("trivy-cache"), [])


@pytest.fixture(scope="module", autouse=True)
def memory_bound() -> Iterator[None]:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < MAX_RSS_GROWTH_KB, f"the property tests grew the process by {grown} kB"


@contextlib.contextmanager
def sandbox() -> Iterator[Path]:
    """A temp root with `target/` (where the command may write) and `outside/` (which must not change).

    Run from inside `target/`, so a relative path that climbs out shows up in the snapshot."""
    with tempfile.TemporaryDirectory(prefix="ap-build-hostile-") as tmp:
        root = Path(tmp)
        (root / "outside").mkdir()
        (root / "outside" / "victim.txt").write_text("precious\n")
        (root / "target").mkdir()
        (root / "target" / "link-out").symlink_to(root / "outside")
        before = {k: v for k, v in snapshot(root).items() if not k.startswith("target/")}
        cwd = os.getcwd()
        os.chdir(root / "target")
        try:
            yield root / "target"
        finally:
            os.chdir(cwd)
        after = {k: v for k, v in snapshot(root).items() if not k.startswith("target/")}
        assert after == before, "a file outside the target changed"


@PROPERTY
@given(option=st.sampled_from(["--name", "--org", "--description", "--owner-team", "--registry", "--repository",
                               "--base-image"]), value=argv_text, dest=segment)
def test_scaffold_options_and_dest(cli, option: str, value: str, dest: str) -> None:
    if option == "--base-image":  # a digest keeps it offline: a tag-only reference would ask its registry
        value = f"x:1@sha256:{'a' * 64}{value}"
    with sandbox() as target:
        r = cli("scaffold", "python", str(target / dest), option, value, "--name", "ok")
        assert_clean(r)
        if option != "--name":
            r = cli("scaffold", "python", str(target / "second"), option, value)
            assert_clean(r)


@PROPERTY
@given(key=st.one_of(hostile, st.sampled_from(["docs/new.md", "../outside/victim.txt", "link-out/x", "Dockerfile"])),
       value=hostile, description=st.one_of(st.just("fine"), hostile))
def test_scaffold_update_with_a_tampered_record(cli, key: str, value: str, description: str) -> None:
    with sandbox() as target:
        assert cli("scaffold", "python", str(target / "repo")).exit_code == 0
        state = target / "repo" / STATE_PATH
        doc = yaml.safe_load(state.read_text())
        doc["base"][key] = value
        doc["answers"]["description"] = description
        state.write_text(yaml.safe_dump(doc, allow_unicode=True))
        assert_clean(cli("scaffold", "--update", str(target / "repo")))
        assert_clean(cli("scaffold", "--update", str(target / "repo"), "--dry-run", "--json"))


@PROPERTY
@given(name=st.one_of(st.just("repo"), argv_text), org=st.one_of(st.just("org"), argv_text), folder=segment,
       dockerfile_line=hostile, link_github=st.booleans())
def test_migrate(cli, name: str, org: str, folder: str, dockerfile_line: str, link_github: bool) -> None:
    with sandbox() as target:
        repo = target / folder
        repo.mkdir()
        (repo / "Dockerfile").write_text(f"ARG DE_ECR\nFROM ${{DE_ECR}}/python:3.9-slim\nRUN echo {dockerfile_line}\n")
        if link_github:
            (repo / ".github").symlink_to("../link-out")
        assert_clean(cli("migrate", str(repo), "--name", name or "x", "--org", org or "x", "--yes"))


@settings(PROPERTY, max_examples=12)
@given(lines=st.lists(hostile, max_size=5), yaml_id=hostile,
       output=st.one_of(segment, st.just("link-out/r.json")), fmt=st.sampled_from(
    ["table", "json", "sarif", "markdown"]))
def test_scan_ignore_lines_and_outputs(cli, cache: Path, lines: list[str], yaml_id: str, output: str,
                                       fmt: str) -> None:
    with sandbox() as target:
        archive = image_archive(target / "i.tar", label="\n".join(lines))
        (target / ".trivyignore").write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
        (target / ".trivyignore.yaml").write_text(yaml.safe_dump({"vulnerabilities": [{"id": yaml_id}]}))
        r = cli("scan", str(archive), "--cache-dir", str(cache), "--skip-db-update", "-f", fmt, "-o", output)
        assert_clean(r, (0, 1, 2))


@PROPERTY
@given(option=st.sampled_from(["--severity", "--vuln-type", "--format", "--report", "--warn-expiry-days",
                               "--timeout", "--skip-dir", "--ignore-file"]), value=argv_text, path=segment)
def test_scan_option_values_and_paths(cli, cache: Path, option: str, value: str, path: str) -> None:
    with sandbox() as target:
        # a path that does not exist: refused before Trivy or the engine is asked anything
        r = cli("scan", str(target / path), option, value, "--cache-dir", str(cache), "--skip-db-update")
        assert_clean(r, (2,))
        r = cli("sbom", str(target / path), "-o", str(target / "x" / path))
        assert_clean(r, (2,))
