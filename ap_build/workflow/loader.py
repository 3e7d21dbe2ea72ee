"""Load `workflow.yml` with PyYAML's C loader (fast), refusing duplicate keys, and find file:line:column
of any key path in it (on the error path only, from the composed node tree)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

try:
    _BaseLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _BaseLoader = yaml.SafeLoader  # type: ignore[assignment,misc]


class DuplicateKey(Exception):
    def __init__(self, key: object, first: yaml.Mark, second: yaml.Mark) -> None:
        super().__init__(f"duplicate key {key!r} (first at line {first.line + 1})")
        self.key, self.first, self.second = key, first, second


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, Any], yaml.Node] = {}
        for key_node, _value in node.value:
            # scalar keys compare by tag and text (no construction: this is the hot path)
            key = (key_node.tag, key_node.value) if isinstance(key_node, yaml.ScalarNode) else (
                "", self.construct_object(key_node, deep=deep))
            if key in seen:
                raise DuplicateKey(key[1], seen[key].start_mark, key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)


@dataclass(frozen=True)
class Location:
    line: int  # 1-based
    column: int  # 1-based


def load(text: str) -> Any:
    """Parse YAML (YAML 1.1 as the platform reads it). Raises yaml.YAMLError or DuplicateKey."""
    return yaml.load(text, Loader=_Loader)


def locate(text: str, path: tuple[str | int, ...], *, key: bool = False) -> Location:
    """Where `path` (e.g. ('dag', 'tasks', 'a', 'env_vars')) is in `text`: its value, or its key when
    `key` is true; the deepest existing ancestor when the path does not exist."""
    try:
        node = yaml.compose(text, Loader=_BaseLoader)
    except yaml.YAMLError:
        return Location(1, 1)
    mark = node.start_mark if node is not None else None
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
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
