"""`.ap-build/scaffold.yml`: what a generated repository was made from (the merge base for `--update`).

It records the runtime, the template version, the answers, and the template's own rendering of each
template file at that version. `--update` three-way merges (that rendering, the user's file, the new
template's rendering), so ap-build does not need to ship every old template version: the repository
carries its own merge base.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from ap_build import __version__
from ap_build.errors import UsageError
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


def load_state(text: str, where: str = STATE_PATH) -> ScaffoldState:
    """Parse the file; UsageError naming the file (and line) if it is not a scaffold record."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"{where}:{mark.line + 1}" if mark else where
        raise UsageError(
            f"{loc}: not valid YAML ({getattr(exc, 'problem', exc)})",
            hint="restore it from version control (git checkout -- .ap-build/scaffold.yml)",
        ) from exc
    if not isinstance(doc, dict) or not {"runtime", "template_version", "answers", "base"} <= set(doc):
        raise UsageError(
            f"{where}: not an ap-build scaffold record (needs runtime, template_version, answers, base)",
            hint="restore it from version control, or re-create the repository with ap-build scaffold",
        )
    if not isinstance(doc["answers"], dict) or not isinstance(doc["base"], dict):
        raise UsageError(f"{where}: `answers` and `base` must be mappings", hint="restore it from version control")
    try:
        answers = Answers.from_dict(doc["answers"])
        version = int(doc["template_version"])
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{where}: bad answers or template_version ({exc})") from exc
    return ScaffoldState(
        runtime=str(doc["runtime"]),
        template_version=version,
        answers=answers,
        base={str(k): str(v) for k, v in doc["base"].items()},
        ap_build_version=str(doc.get("ap_build_version", "")),
    )
