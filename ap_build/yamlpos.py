"""YAML with positions, bounded: the one loader for manifests (`workflow.yml`) and ignore files (pure).

Two readings of one parser (PyYAML's C loader, libyaml):
- `load`: one document as plain Python values (YAML 1.1 as the platform reads it: dates are dates),
  refusing duplicate keys; `locate` finds file:line:column of any key path on the error path only, from
  the composed node tree. Used for manifests.
- `load_all`: every document as `Map`/`Seq`/scalars that remember their lines, built from the composed
  nodes (no implicit dates: `2026-13-01` stays a string the caller reports at its line). Used for
  `.trivyignore.yaml` and `.grype.yaml`.
And `dump`, for YAML a user will edit (a starter manifest): block style, keys in order, lists indented,
written by the same library that reads it, so `on`/`no`/`yes` come out quoted (YAML 1.1 reads them as booleans).

One set of bounds for both: a document is at most MAX_BYTES; aliases may not expand it beyond MAX_NODES
values or MAX_CHARS characters of text (the "billion laughs": nine anchors aliased nine times each) nor
nest it deeper than MAX_DEPTH, and may not refer to themselves. Without an anchor (`&`) there is no
alias, so the document is as big as its text, and libyaml itself stops nesting at 1000 levels (`load`
builds nested values iteratively; `load_all`'s walk is recursive, so it stops at MAX_DEPTH whatever the text).
Mappings and sequences as keys are refused. Each of these is a `Refused` with the node's position.
Each kind of file may be held to a smaller size before it is read (a manifest: 256 KiB).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

try:
    _BaseLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _BaseLoader = yaml.SafeLoader  # type: ignore[assignment,misc]

MAX_BYTES = 1024 * 1024  # the biggest real manifest is 42 kB, an ignore file is held to 1 MiB by its reader
MAX_NODES = 100_000  # values after alias expansion (the biggest real manifest has 2,468)
MAX_CHARS = 4 * MAX_BYTES  # characters of scalar text after alias expansion
MAX_DEPTH = 64  # nesting after alias expansion (real manifests nest 6 deep, ignore files 4)


class DuplicateKey(Exception):
    def __init__(self, key: object, first: yaml.Mark, second: yaml.Mark) -> None:
        super().__init__(f"duplicate key {key!r} (first at line {first.line + 1})")
        self.key, self.first, self.second = key, first, second


class Refused(Exception):
    """YAML that parses but that a manifest may not be: too big, too deep, recursive, a complex key."""

    def __init__(self, message: str, hint: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message, self.hint, self.line, self.column = message, hint, line, column

    @classmethod
    def at(cls, node: yaml.Node, message: str, hint: str) -> Refused:
        return cls(message, hint, node.start_mark.line + 1, node.start_mark.column + 1)


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, Any], yaml.Node] = {}
        for key_node, _value in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # scalar keys compare by tag and text (hot path)
                raise Refused.at(key_node, f"a {'mapping' if isinstance(key_node, yaml.MappingNode) else 'list'} "
                                           "cannot be a key", "keys are plain names: `key: value`")
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise DuplicateKey(key[1], seen[key].start_mark, key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _checked(construct: Any, what: str) -> Any:
    """A scalar constructor that reports a value it cannot build (`2026-13-01`, `!!int x`) at its node."""

    def build(loader: yaml.BaseLoader, node: yaml.Node) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            detail = f" ({exc})" if isinstance(exc, ValueError) and what == "a date or time" else ""
            raise Refused.at(node, f"{node.value!r} is not {what}{detail}", "quote it to make it a string") from exc

    return build


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Iterator[dict[Any, Any]]:
    """As PyYAML's own: a generator, so nested mappings are built iteratively (500 levels are no recursion)."""
    data: dict[Any, Any] = {}
    yield data
    data.update(loader.construct_mapping(node))


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
for _tag, _what in (("int", "a whole number"), ("float", "a number"), ("bool", "true or false"),
                    ("timestamp", "a date or time")):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}",
                            _checked(yaml.constructor.SafeConstructor.yaml_constructors[f"tag:yaml.org,2002:{_tag}"],
                                     _what))


@dataclass(frozen=True)
class Location:
    line: int  # 1-based
    column: int  # 1-based


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose aliases expand too far or refer to themselves (iterative, memoised:
    every distinct node is measured once, however often it is aliased)."""
    measured: dict[int, tuple[int, int, int]] = {}  # id -> (values, characters, depth) once expanded
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    hint = "write the values out instead of repeating aliases"
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            parts = [measured[id(c)] for c in _children(node)]
            own = len(node.value) if isinstance(node, yaml.ScalarNode) else 0
            size = (1 + sum(p[0] for p in parts), own + sum(p[1] for p in parts),
                    1 + max((p[2] for p in parts), default=0))
            if size[0] > MAX_NODES or size[1] > MAX_CHARS:
                raise Refused.at(node, f"aliases expand this value beyond {MAX_NODES:,} values or {MAX_CHARS:,} "
                                       "characters (a \"billion laughs\")", hint)
            if size[2] > MAX_DEPTH:
                raise Refused.at(node, f"values nest deeper than {MAX_DEPTH} levels", "flatten the structure")
            measured[key] = size
            open_nodes.discard(key)
        elif key in open_nodes:
            raise Refused.at(node, "an alias refers to the value that contains it (a recursive structure)", hint)
        elif key not in measured:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in _children(node))


def load(text: str) -> Any:
    """Parse YAML (YAML 1.1 as the platform reads it). Raises yaml.YAMLError, DuplicateKey or Refused."""
    if len(text) > MAX_BYTES:
        raise Refused(f"the document is {len(text):,} characters, more than {MAX_BYTES:,}",
                      "is this the right file?")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        _remember(text, node)
        if node is None:
            return None
        if "&" in text:  # no anchor, no alias: the document is no bigger than its text
            check_expansion(node)
        else:
            with contextlib.suppress(Exception, RecursionError):  # anything else: PyYAML's constructor decides
                return _plain(loader, node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


_STR, _MAP, _SEQ, _MERGE = (f"tag:yaml.org,2002:{t}" for t in ("str", "map", "seq", "merge"))
_SCALARS = {f"tag:yaml.org,2002:{t}" for t in ("int", "float", "bool", "null", "timestamp")}


class _Unusual(Exception):
    """A node `_plain` leaves to PyYAML's constructor (a merge key, a complex key, another tag)."""


def _plain(loader: _Loader, node: yaml.Node) -> Any:
    """The values of a node tree without aliases, as PyYAML's constructor builds them, in a third of its
    time: strings, mappings and lists directly, the other core scalars by the loader's own constructors.
    Anything else, and any problem, raises, and PyYAML's constructor builds (or refuses) the whole document,
    so values and errors are always PyYAML's (tests/test_yamlpos.py compares both on the corpus and on
    generated documents)."""
    tag = node.tag
    if isinstance(node, yaml.ScalarNode):
        if tag == _STR:
            return node.value
        if tag in _SCALARS:
            return loader.yaml_constructors[tag](loader, node)
    elif isinstance(node, yaml.MappingNode) and tag == _MAP:
        keys = [(k.tag, k.value) for k, _ in node.value if isinstance(k, yaml.ScalarNode) and k.tag != _MERGE]
        if len(set(keys)) == len(node.value):  # no complex, merge or duplicate key
            return {_plain(loader, k): _plain(loader, v) for k, v in node.value}
    elif isinstance(node, yaml.SequenceNode) and tag == _SEQ:
        return [_plain(loader, item) for item in node.value]
    raise _Unusual


_composed: dict[str, yaml.Node | None] = {}  # the last text loaded or located: its problems all look here


_keys: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = {}  # id(mapping node) -> its keys, built on demand


def _remember(text: str, node: yaml.Node | None) -> None:
    _composed.clear()
    _keys.clear()
    _composed[text] = node


def _entry(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    """A mapping's (key node, value node) for `key`: O(1) after the first look, however many keys or problems."""
    index = _keys.get(id(node))
    if index is None:  # the last occurrence wins, as in the loaded data (merged `<<` keys come first)
        index = _keys[id(node)] = {k.value: (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    return index.get(key)


def _compose(text: str) -> yaml.Node | None:
    """The node tree of `text`, composed once for all the problems of one file (a str keeps its hash)."""
    if text not in _composed:
        _remember(text, yaml.compose(text, Loader=_BaseLoader))
    return _composed[text]


def locate(text: str, path: tuple[str | int, ...], *, key: bool = False) -> Location:
    """Where `path` (e.g. ('dag', 'tasks', 'a', 'env_vars')) is in `text`: its value, or its key when
    `key` is true; the deepest existing ancestor when the path does not exist."""
    try:
        node = _compose(text)
    except yaml.YAMLError:
        return Location(1, 1)
    mark = node.start_mark if node is not None else None
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, yaml.MappingNode):
            match = _entry(node, str(part))
            if match is None:
                break
            key_node, node = match
            mark = key_node.start_mark if key and last else node.start_mark
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            mark = node.start_mark
        else:
            break
    if mark is None:
        return Location(1, 1)
    return Location(mark.line + 1, mark.column + 1)


class Map(dict):
    """A YAML mapping from `load_all`: `line` of the mapping, `lines[key]` of each key (1-based), and
    `key_tags[key]`, what YAML read the key as (`str`, or `int` for `7:`, `bool` for `yes:`...): keys are text."""

    line: int = 0
    lines: dict[str, int]
    key_tags: dict[str, str]


class Seq(list):
    """A YAML sequence from `load_all`: `line` of the sequence, `lines[i]` of each item (1-based)."""

    line: int = 0
    lines: list[int]


class YamlError(ValueError):
    """Unreadable or refused YAML from `load_all`: `line` (1-based) and a message."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


_CONSTRUCT = {"null", "bool", "int", "float"}


def _value(node: yaml.Node, construct: Any, depth: int = 0) -> Any:
    """A composed node as Map/Seq/scalar (check_expansion has bounded the walk when there are aliases)."""
    if depth > MAX_DEPTH:
        raise Refused.at(node, f"values nest deeper than {MAX_DEPTH} levels", "flatten the structure")
    if isinstance(node, yaml.MappingNode):
        m = Map()
        m.line, m.lines, m.key_tags = node.start_mark.line + 1, {}, {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise Refused.at(k, "a mapping key must be a plain value", "keys are plain names: `key: value`")
            key = str(k.value)
            m[key] = _value(v, construct, depth + 1)
            m.lines[key] = k.start_mark.line + 1
            m.key_tags[key] = k.tag.rsplit(":", 1)[-1]
        return m
    if isinstance(node, yaml.SequenceNode):
        s = Seq()
        s.line, s.lines = node.start_mark.line + 1, []
        for item in node.value:
            s.append(_value(item, construct, depth + 1))
            s.lines.append(item.start_mark.line + 1)
        return s
    if node.tag.rsplit(":", 1)[-1] in _CONSTRUCT:
        try:
            return construct(node)
        except (yaml.YAMLError, ValueError, OverflowError):
            return node.value
    return node.value


def load_all(text: str) -> list[Any]:
    """Every document of `text` as plain values (Map/Seq/str/int/bool/None); YamlError with a line."""
    if len(text) > MAX_BYTES:
        raise YamlError(1, f"the document is {len(text):,} characters, more than {MAX_BYTES:,}")
    loader = _BaseLoader(text)
    construct = yaml.constructor.SafeConstructor().construct_object
    docs: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None and "&" in text:
                check_expansion(node)
            docs.append(None if node is None else _value(node, construct))
    except Refused as exc:
        raise YamlError(exc.line, exc.message) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(mark.line + 1 if mark else 1, f"invalid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise YamlError(1, f"invalid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return docs


class _BlockDumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # `key:\n  - item`, not `key:\n- item`


def dump(data: Any) -> str:
    """`data` as block YAML for people to read and edit (keys in their order, UTF-8 kept)."""
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
                     width=100)
