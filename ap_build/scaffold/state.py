"""`.ap-build/scaffold.yml`: what a generated repository was made from (the merge base for `--update`).

It records the runtime, the template version, the answers, and the template's own rendering of each
template file at that version. `--update` three-way merges (that rendering, the user's file, the new
template's rendering), so ap-build does not need to ship every old template version: the repository
carries its own merge base.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from ap_build import __version__, yamlpos
from ap_build.errors import UsageError
from ap_build.fsio import check_relpath
from ap_build.platform import RUNTIMES
from ap_build.scaffold.render import Answers

STATE_PATH = ".ap-build/scaffold.yml"
SCHEMA_VERSION = 1

HEADER = (
    "# Written by `ap-build scaffold`: the template this repository was made from, the answers, and\n"
    "# the template's own version of each file (the merge base for `ap-build scaffold --update`).\n"
    "# Do not edit by hand.\n"
)


@dataclass
class ScaffoldState:
    """The recorded template version, answers and merge base of one generated repository."""

    runtime: str
    template_version: int
    answers: Answers
    base: dict[str, str] = field(default_factory=dict)
    ap_build_version: str = __version__


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # Multi-line text as a literal block (readable diffs) when YAML can hold it exactly.
    if "\n" in data and not any(line != line.rstrip() for line in data.splitlines()) and "\t" not in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str)


def dump_state(state: ScaffoldState) -> str:
    """The file's text (pure)."""
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "runtime": state.runtime,
        "template_version": state.template_version,
        "ap_build_version": state.ap_build_version,
        "answers": state.answers.to_dict(),
        "base": dict(sorted(state.base.items())),
    }
    return HEADER + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)


MAX_STATE_BYTES = yamlpos.MAX_BYTES  # the record holds the template's files (~60 kB): far below this


def _line(doc: yamlpos.Map, key: tuple[str, ...]) -> int | None:
    """1-based line of `key` (e.g. ('base', 'Dockerfile')) in the record, or of its deepest ancestor found."""
    line, node = None, doc
    for part in key:
        if not isinstance(node, yamlpos.Map) or part not in node.lines:
            break
        line, node = node.lines[part], node[part]
    return line


Bad = Callable[[tuple[str, ...], str], UsageError]  # (key path, message) -> the error naming file and line


def load_state(text: str, where: str = STATE_PATH) -> ScaffoldState:
    """Parse and validate the record; UsageError naming the file and line if it is not a scaffold record.

    The record is in the repository, so any pull request can change it: it is read by the one bounded
    YAML loader (ap_build/yamlpos.py), every type is checked, and every `base` path must be a relative
    path inside the repository (not under `.git`), before `--update` reads, writes or deletes anything by it.
    """
    hint = "restore it from version control (git checkout -- .ap-build/scaffold.yml)"
    if len(text) > MAX_STATE_BYTES:
        raise UsageError(f"{where}: {len(text)} bytes, more than a scaffold record holds", hint=hint)
    try:
        docs = yamlpos.load_all(text)
    except yamlpos.YamlError as exc:
        raise UsageError(f"{where}:{exc.line}: not valid YAML ({exc.message})", hint=hint) from exc
    doc = docs[0] if len(docs) == 1 else None
    if not isinstance(doc, yamlpos.Map) or not {"runtime", "template_version", "answers", "base"} <= set(doc):
        raise UsageError(
            f"{where}: not an ap-build scaffold record (needs runtime, template_version, answers, base)",
            hint="restore it from version control, or re-create the repository with ap-build scaffold",
        )

    def bad(key: tuple[str, ...], what: str) -> UsageError:
        line = _line(doc, key)
        return UsageError(f"{where}{f':{line}' if line else ''}: {what}", hint=hint)

    if doc["runtime"] not in RUNTIMES:
        raise bad(("runtime",), f"runtime {doc['runtime']!r} is not one of {', '.join(RUNTIMES)}")
    version = doc["template_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise bad(("template_version",), f"template_version {version!r} is not a version number")
    if not isinstance(doc["answers"], dict) or not isinstance(doc["base"], dict):
        raise bad(("answers",), "`answers` and `base` must be mappings")
    answers = _answers(doc["answers"], bad)
    base = _base_files(doc["base"], where, bad, lambda key: _line(doc, ("base", key)))
    ap_version = doc.get("ap_build_version", "")
    return ScaffoldState(
        runtime=doc["runtime"],
        template_version=version,
        answers=answers,
        base=base,
        ap_build_version=ap_version if isinstance(ap_version, str) else str(ap_version),
    )


def _base_files(base: yamlpos.Map, where: str, bad: Bad, line_of: Callable[[str], int | None]) -> dict[str, str]:
    """`base`: template file -> its recorded text; every path a relative one inside the repository that
    ap-build manages (never the record itself or `.git`)."""
    out: dict[str, str] = {}
    for key, value in base.items():
        if (tag := base.key_tags[key]) != "str":
            raise bad(("base", key), f"base: {key} is not a file path (YAML reads it as a {tag}: quote it)")
        rel = check_relpath(key, f"{where}:{line_of(key) or '?'}")
        if rel == STATE_PATH or rel.split("/")[0] == ".git":
            raise bad(("base", key), f"base: {key!r} is not a template file ap-build manages")
        if not isinstance(value, str):
            raise bad(("base", key), f"base: the recorded text of {key!r} is not a string")
        out[rel] = value
    return out


def _answers(answers: yamlpos.Map, bad: Bad) -> Answers:
    """The recorded answers, each checked as `scaffold` checks it, the error at the line of the bad one."""
    for key, value in answers.items():
        kind, name = (int, "number") if key == "year" else (str, "string")
        if not isinstance(value, kind) or isinstance(value, bool):
            raise bad(("answers", key), f"answers.{key}: {value!r} is not a {name}")
    try:
        checked = Answers.from_dict(answers)
    except (TypeError, ValueError) as exc:
        raise bad(("answers",), f"bad answers ({exc})") from exc
    for key in answers:  # one at a time, so the error names the line of the bad one
        try:
            Answers.from_dict({key: answers[key]}).validate()
        except UsageError as exc:
            raise bad(("answers", key), f"answers.{key}: {exc.message}") from exc
    return checked
