"""The Dockerfile tokenizer (exact spans, real-parser agreement) and the legacy rewrite (pure)."""

from __future__ import annotations

import io
import json

import pytest
from dockerfile_parse import DockerfileParser
from hypothesis import given, settings
from hypothesis import strategies as st

from ap_build.errors import UsageError
from ap_build.migrate.dockerfile import is_migrated, parse
from ap_build.migrate.rewrite import exec_form, rewrite

from .conftest import FIXTURES, LEGACY

BASE = "127.0.0.1:5000/ap-build/python-base:1.0.0@sha256:" + "a" * 64


def dockerfiles() -> list[tuple[str, str]]:
    out = []
    for name in LEGACY:
        for df in ("Dockerfile", "Dockerfile.nopython"):
            p = FIXTURES / name / df
            if p.exists():
                out.append((f"{name}/{df}", p.read_bytes().decode()))
    return out


@pytest.mark.parametrize(("name", "text"), dockerfiles(), ids=[n for n, _ in dockerfiles()])
def test_items_reassemble_the_exact_bytes(name: str, text: str) -> None:
    assert parse(text).text() == text


@pytest.mark.parametrize(("name", "text"), [d for d in dockerfiles() if "<<" not in d[1]],
                         ids=[n for n, t in dockerfiles() if "<<" not in t])
def test_agrees_with_dockerfile_parse_without_heredocs(name: str, text: str) -> None:
    """Same instructions, keywords and line spans as the `dockerfile-parse` library."""
    ref = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    theirs = [(i["instruction"], i["startline"] + 1, i["endline"] + 1) for i in ref.structure
              if i["instruction"] != "COMMENT"]
    ours = [(i.keyword, i.line, i.end_line) for i in parse(text).instructions()]
    assert ours == theirs


def test_heredocs_are_one_instruction_each() -> None:
    text = (FIXTURES / "python_heredoc/Dockerfile").read_text()
    items = parse(text).instructions()
    assert [i.keyword for i in items] == ["ARG", "FROM", "WORKDIR", "COPY", "RUN", "COPY", "COPY", "RUN", "USER",
                                          "CMD"]
    run = items[4]
    assert run.heredocs == ("EOT",) and (run.line, run.end_line) == (7, 11)
    assert run.raw.endswith("python -m pip check\nEOT\n")
    copy = items[5]
    assert copy.heredocs == ("EOF",) and copy.raw.endswith("\tEOF\n")  # <<- strips leading tabs


def test_unclosed_heredoc_names_file_and_line() -> None:
    with pytest.raises(UsageError, match=r"Dockerfile:2: heredoc <<EOT is never closed"):
        parse("FROM x\nRUN <<EOT\necho hi\n")


def test_escape_directive_and_continuation_comments() -> None:
    text = "# escape=`\nFROM x\nRUN echo a `\n  # inside\n\n  b\nCMD y"
    df = parse(text)
    assert df.escape == "`" and df.directives == {"escape": "`"}
    run = df.instructions()[1]
    assert (run.line, run.end_line, run.value) == (3, 6, "echo a   b")
    assert df.text() == text


_line = st.sampled_from([
    "FROM python:3.9\n", "# a comment\n", "\n", "RUN a \\\n  b\n", "RUN a \\\n# c\n  b\n", "COPY x /etl/\n",
    "RUN <<EOF\nset -e\nEOF\n", "ENV A=1 \\\r\n  B=2\r\n", "WORKDIR /etl\r\n", "# syntax=docker/dockerfile:1\n",
    "ENTRYPOINT python run.py\n", "USER daguser\n", "\t\n",
])


@settings(max_examples=200, deadline=None)
@given(st.lists(_line, max_size=25), st.booleans())
def test_round_trip_property(lines: list[str], drop_last_newline: bool) -> None:
    text = "".join(lines)
    if drop_last_newline:
        text = text.rstrip("\n")
    df = parse(text)
    assert df.text() == text
    assert all(i.raw for i in df.items)
    assert [i.line for i in df.items] == sorted(i.line for i in df.items)


@settings(max_examples=100, deadline=None)
@given(st.lists(_line, max_size=20))
def test_rewrite_is_idempotent_and_comments_go_only_with_their_lines(lines: list[str]) -> None:
    text = "ARG DE_ECR\nFROM ${DE_ECR}/python:3.9-slim\n" + "".join(ln for ln in lines if not ln.startswith("FROM"))
    once = rewrite(parse(text), BASE)
    assert is_migrated(parse(once.text))
    assert rewrite(parse(once.text), BASE).changed is False
    comments = [i.raw for i in parse(text).items if i.kind == "comment"]
    kept = [i.raw for i in parse(once.text).items if i.kind == "comment" and i.raw in comments]
    it = iter(comments)
    assert all(c in it for c in kept)  # the comments left keep their order...
    gone = [d for d in once.done if "dropped the comment of a removed line" in d]
    assert len(kept) + len(gone) == len(comments)  # ...and each one that went, went with its removed line


def test_python_legacy_rewrite_in_full() -> None:
    text = (FIXTURES / "python_basic/Dockerfile").read_text()
    new = rewrite(parse(text), BASE).text
    assert new == (
        f"FROM {BASE}\n"
        'ARG MOJAP_IMAGE_VERSION="default"\n'
        'ENV MOJAP_IMAGE_VERSION="${MOJAP_IMAGE_VERSION}"\n'
        "# FROM ${DE_ECR}/python:3.8-slim\n"
        "# FROM ${DE_ECR}/python:3.7-slim\n"
        "\n"
        "WORKDIR /opt/analyticalplatform\n"
        "\n"
        "USER root\n"
        "COPY requirements.txt requirements.txt\n"
        "RUN pip install -r requirements.txt\n"
        "\n"
        "COPY scripts/ scripts/\n"
        "USER ${CONTAINER_UID}\n"
        "\n"
        'ENTRYPOINT ["python3", "-u", "scripts/run.py"]\n'
    )


def test_crlf_multistage_rewrite() -> None:
    raw = (FIXTURES / "python_multistage_crlf/Dockerfile").read_bytes()
    text = raw.decode()
    rw = rewrite(parse(text), BASE)
    new = rw.text
    assert "\n" not in new.replace("\r\n", "")  # every line, new ones included, ends CRLF
    old_lines, new_lines = text.split("\r\n"), new.split("\r\n")
    for kept in ("# syntax=docker/dockerfile:1", "# system packages for the PDF step",
                 "    # no recommends: keeps the image small", "WORKDIR /build",
                 "RUN pip wheel --wheel-dir /wheels -r requirements.txt", "    TZ=Europe/London"):
        assert kept in old_lines and kept in new_lines
    assert new_lines[0] == "# syntax=docker/dockerfile:1"
    assert f"FROM {BASE} AS build" in new_lines and f"FROM {BASE}" in new_lines
    # the builder stage's /wheels stay; COPY --from keeps its source, the destination follows the workdir
    assert "COPY --from=build /wheels /opt/analyticalplatform/wheels" in new_lines
    assert 'RUN python3 -c "import etl"' in new_lines
    assert "ARG DE_ECR" not in new and "/etl" not in new and "chmod" not in new
    assert new_lines[-2] == 'ENTRYPOINT ["/bin/sh", "-c", "python3 -u scripts/run.py --date \\"$RUN_DATE\\""]'
    assert any("re-based" in d for d in rw.done) and any("/bin/sh -c" in n for n in rw.notes)
    # the final stage ends as the platform user, after its last root step
    final = new_lines[new_lines.index(f"FROM {BASE}"):]
    assert final.index("USER root") < final.index("USER ${CONTAINER_UID}") < final.index(new_lines[-2])


def test_r_rewrite_drops_daguser_and_adds_python_only_when_asked() -> None:
    text = (FIXTURES / "r_python/Dockerfile").read_text()
    with_py = rewrite(parse(text), BASE, add_python=True).text
    without = rewrite(parse(text), BASE).text
    for new in (with_py, without):
        assert "daguser" not in new and "adduser" not in new and "chmod" not in new
        assert 'RUN R -e "renv::restore()"' in new and 'RUN R -e "renv::use_python()"' in new
        assert new.rstrip().endswith('ENTRYPOINT ["Rscript", "scripts/run.R"]')
    assert "python3-venv" in with_py and "python3-venv" not in without
    nopy = rewrite(parse((FIXTURES / "r_nopython/Dockerfile").read_text()), BASE).text
    assert "chown" not in nopy and "libxml2-dev" in nopy  # the chained chown to daguser went with adduser


@pytest.mark.parametrize(("cmd", "argv", "shell"), [
    ("python -u scripts/run.py", ["python", "-u", "scripts/run.py"], False),
    ("Rscript scripts/run.R", ["Rscript", "scripts/run.R"], False),
    ("python a.py && echo done", ["/bin/sh", "-c", "python a.py && echo done"], True),
    ('python a.py --x "$Y"', ["/bin/sh", "-c", 'python a.py --x "$Y"'], True),
])
def test_exec_form(cmd: str, argv: list[str], shell: bool) -> None:
    assert exec_form(cmd) == (argv, shell)
    json.dumps(argv)
