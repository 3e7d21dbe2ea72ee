"""YAML with line numbers for ignore files: fast (libyaml's composer), linear and bounded (pure).

Ignore files are small YAML documents read on every scan, so they are composed into nodes with PyYAML's
C composer (no Python object construction, no implicit dates: `2026-13-01` stays a string the caller
reports at its line) and turned into plain values that remember their lines. Aliases are not expanded
into copies; the walk has a node budget, so an alias bomb is a clean error, not a hang.
"""

from __future__ import annotations

from typing import Any

MAX_NODES = 200_000
MAX_DEPTH = 64  # an ignore file needs 4 levels; deeper is refused before Python's recursion limit


class Map(dict):
    """A YAML mapping: `line` of the mapping, `lines[key]` of each key (1-based)."""

    line: int = 0
    lines: dict[str, int]


class Seq(list):
    """A YAML sequence: `line` of the sequence, `lines[i]` of each item (1-based)."""

    line: int = 0
    lines: list[int]


class YamlError(ValueError):
    """Unreadable YAML: `line` (1-based) and a message."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


_CONSTRUCT = {"null", "bool", "int", "float"}


def _value(node: Any, budget: list[int], construct: Any, depth: int = 0) -> Any:
    import yaml

    budget[0] -= 1
    if budget[0] < 0:
        raise YamlError(node.start_mark.line + 1, f"more than {MAX_NODES} YAML values (an alias bomb?)")
    if depth > MAX_DEPTH:
        raise YamlError(node.start_mark.line + 1, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, yaml.MappingNode):
        m = Map()
        m.line, m.lines = node.start_mark.line + 1, {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise YamlError(k.start_mark.line + 1, "a mapping key must be a plain value")
            key = str(k.value)
            m[key] = _value(v, budget, construct, depth + 1)
            m.lines[key] = k.start_mark.line + 1
        return m
    if isinstance(node, yaml.SequenceNode):
        s = Seq()
        s.line, s.lines = node.start_mark.line + 1, []
        for item in node.value:
            s.append(_value(item, budget, construct, depth + 1))
            s.lines.append(item.start_mark.line + 1)
        return s
    tag = node.tag.rsplit(":", 1)[-1]
    if tag in _CONSTRUCT:
        try:
            return construct(node)
        except (yaml.YAMLError, ValueError):
            return node.value
    return node.value


def load_all(text: str) -> list[Any]:
    """Every document of `text` as plain values (Map/Seq/str/int/bool/None); YamlError with a line."""
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    budget = [MAX_NODES]
    construct = yaml.constructor.SafeConstructor().construct_object
    docs: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            docs.append(None if node is None else _value(node, budget, construct))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(mark.line + 1 if mark else 1, f"invalid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise YamlError(1, f"invalid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return docs
