"""The fast path of loading a manifest: yaml-rs (Rust) where it provably gives what PyYAML gives.

PyYAML with libyaml (loader.load, YAML 1.1, as the platform's generator reads manifests) spends ~0.6 ms
per manifest building Python event and node objects; yaml-rs builds the values directly, ~10x faster.
But yaml-rs reads YAML 1.2, and parses a little more than libyaml accepts, so its result is taken only
when the text passes a screen that rules out every known difference; anything else (and anything it
cannot parse) returns None, and the caller uses the exact path. The screen, one regex pass plus a
check of each plain scalar that could resolve to a non-string:

- a plain scalar starting with a digit, sign or dot (`010`, `0o10`, `1:30`, `1e3`, `2024-13-01`, dates)
  or one of yes/no/on/off/true/false/null (any case), `~`, `<<`, `=`: accepted only if it is a plain
  decimal (`3`, `-1.5`) or resolves to the same value and type in both (checked once per distinct token:
  `- TOKEN` parsed by both). Dates stay strings in yaml-rs (parse_datetime=False would miss none: every
  plain date token is such a scalar, and yaml-rs turns even quoted dates into dates otherwise);
- anchors, tags, explicit `?` keys, collections as keys, `%` directives, a second document, flow-style
  `:` and indicators that libyaml refuses (`[a:]`, `{k: :0}`, `[|]`), an empty key, a block scalar whose
  first line is blank, backslash escapes, tabs, CR, BOM, NEL/LS/PS and characters YAML 1.1 does not
  allow, a text not ending in a line break (block scalars' last line break differs).

The screen is conservative by construction: tokens are found wherever a plain scalar can start (after
whitespace, `[`, `{`, `,` or `:`), also inside quoted strings, where a hit only costs the slow path.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

import yaml
import yaml_rs

from ap_build.workflow.loader import MAX_BYTES

_END = r"(?=[\s,\]}]|$)"  # where a plain scalar ends (or a key: `:` is allowed after the word ones)
# a plain scalar that may not resolve alike, after where one can start (a line break, a space, `[`, `{`, `,`,
# `:`): starting with a digit after signs, dots or `_` (yaml-rs drops `_` from numbers: `_1` is 1) but not a
# plain decimal of at most 18 digits each side of the point (PyYAML refuses an int of over 4,300 digits,
# yaml-rs builds it); `~`, `<<`, `=`; yes/no/on/off (YAML 1.1 booleans). true/false/null resolve alike in
# every case spelling (checked in tests/workflow/test_fastload.py).
_TOKEN = re.compile(
    r"[ \n\[{,:](?=[-+_.0-9~<=yYnNoO])"  # (the lookahead first: most positions fail it at once)
    r"(?:(?![-+]?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{1,17})?" + _END + r")[-+_.]*[0-9]|[-+_]*\.[A-Za-z]"
    r"|(?:~|<<|=|[yY]es|YES|[nN]o|NO|[oO]n|ON|[oO]ff|OFF)(?=[\s,\]}:]|$))[^\s,\[\]{}]*")
_MARKER = re.compile(r"\n(?:%|---|\.\.\.)")  # a directive or document marker (a leading "---\n" is skipped)
_FLOW_COLON = re.compile(r":[\]},]")  # flow `[a:]`, which libyaml refuses
_INDICATORS = "&!?"  # an anchor, a tag, an explicit key (maybe a collection; in flow even `?x`) where a value starts
# a block scalar whose first line is blank (or missing): yaml-rs reads an empty one as "\n", PyYAML as ""
_BLOCK = re.compile(r"[ \n][|>][-+0-9]*[ \t]*(?:#[^\n]*)?\n(?=[ \t]*(?:\n|\Z))")
_EMPTY_KEY = re.compile(r"\n[ -]*:(?=\s)")  # `: x`, `- : x`: libyaml refuses an empty key
# libyaml refuses what yaml-rs reads: `[:a]`, `[?]`, `[@x]`, `{k: |}` (an indicator where a flow value starts),
# `{k: :0}`, `{"k"::0}`; a collection as a key (`[a]: b`, `[[]:a]`) is a tuple key to yaml-rs, a refusal to the
# exact path
_FLOW = re.compile(r"[\[{,][ \t]*(?:[:|>@`%?]|-(?=[\s,\[\]{}]))|[\]}][ \t]*:")
_FLOW_KEY = re.compile(r"[{,][ \t]*[\[{]")  # on a line with a `{`: maybe a collection as a key (`{[a]}`, `{{}}`)
_COLON = re.compile(r""":(?:[ \t]*[@`%]|(?<=[ \t"']:)(?=\S))""")
# yaml-rs reads `|` and `>` in flow context as plain text: flow collections must close on their line, which
# must hold no `|` or `>` where a value starts (nearly every real one is `[a, b]`, `{}` or a quoted template)
_BLOCK_INDICATOR = re.compile(r"[\s\[{,:][|>]")
_QUOTED = re.compile(r"""(?<=[\s\[{,:])(?:"(?:[^"\\]|\\.)*"|'(?:[^']|'')*')""")
MAX_CHECKS = 256  # distinct unusual tokens (~15 us each to check) per text; the corpus has at most 40


@functools.lru_cache(maxsize=4096)
def agrees(token: str) -> bool:
    """Does the plain scalar `token` load as the same value of the same type in PyYAML and yaml-rs?"""
    doc = f"- {token}\n"
    try:  # repr tells 1 from 1.0 and True, a date from a string (and fails on an int of over 4,300 digits)
        exact, fast = repr(yaml.load(doc, Loader=yaml.CSafeLoader)), repr(_yaml_rs(doc))
    except Exception:  # either refuses it: the exact path reports it
        return False
    return exact == fast and "nan" not in fast  # NaN: two NaN keys are no duplicate to yaml-rs


def _flow_lines(text: str) -> Iterator[str]:
    """The lines with a `[` or `{` (found with `str.find`: a regex over the whole text costs 10x more)."""
    for opening in "[{":
        at = text.find(opening)
        while at >= 0:
            end = text.find("\n", at) % (len(text) + 1)  # (-1, no line break after it: the text's end)
            yield text[text.rfind("\n", 0, at) + 1:end]
            at = text.find(opening, end)


def _flat_flow(line: str) -> bool:
    """Flow collections that open and close on this line, without what libyaml refuses in them. Quoted
    scalars that start where a value can and end on the line are left out first (`"{{ x | int }}"`); any
    other quote (an apostrophe in plain text, a quoted scalar going on to the next line) is refused."""
    if '"' in line or "'" in line:
        line = _QUOTED.sub("", line)
        if '"' in line or "'" in line:
            return False
    return (line.count("[") == line.count("]") and line.count("{") == line.count("}")
            and not _BLOCK_INDICATOR.search(line) and not _FLOW.search(line)
            and not ("{" in line and _FLOW_KEY.search(line)))


def screened(text: str) -> bool:
    """True when yaml-rs's reading of `text` equals PyYAML's (see the module docstring)."""
    if len(text) > MAX_BYTES or not text.endswith("\n") or not text.replace("\n", " ").isprintable():
        return False  # (isprintable: no tab, CR, BOM, NEL/LS/PS, control or unassigned character)
    start = 4 if text.startswith("---\n") else 0
    if text.startswith(("%", "---", "..."), start):  # a directive, a document marker: only "---\n" is plain
        return False
    if "\\" in text or _MARKER.search(text) or _FLOW_COLON.search(text):  # (`\\`: escapes)
        return False
    for indicator in _INDICATORS:  # rare characters: look at each one's left neighbour
        at = text.find(indicator, start)
        while at >= 0:
            if at == start or text[at - 1] in " \n[{,:":
                return False
            at = text.find(indicator, at + 1)
    if ("|" in text or ">" in text) and _BLOCK.search(text):
        return False
    if not all(_flat_flow(line) for line in _flow_lines(text)):
        return False
    if _COLON.search(text):
        return False
    text = "\n" + text[start:]  # (a line break before the first line: where a key or a token can start)
    if _EMPTY_KEY.search(text):
        return False
    tokens = set(_TOKEN.findall(text))
    return len(tokens) <= MAX_CHECKS and all(agrees(token[1:]) for token in tokens)


def load(text: str) -> dict[str, Any] | None:
    """The manifest's mapping as PyYAML's safe loader gives it, or None: use the exact path
    (loader.load), which also reports every problem with its position."""
    if not screened(text):
        return None
    try:
        data = _yaml_rs(text)
    except Exception:  # invalid YAML, a duplicate key, an unknown alias: the exact path says where
        return None
    return data if type(data) is dict else None


def _yaml_rs(text: str) -> Any:
    """yaml-rs's reading (dates left as text, duplicate keys refused); a panic in its Rust code, which pyo3
    raises as a BaseException, becomes an ordinary exception: the caller then uses the exact path."""
    try:
        return yaml_rs.loads(text, parse_datetime=False, duplicate_key_policy=yaml_rs.DuplicateKeyPolicy.Error)
    except BaseException as exc:
        if type(exc).__name__ == "PanicException":
            raise ValueError(f"yaml-rs panicked: {exc}") from exc
        raise
