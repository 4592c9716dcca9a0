"""Safe YAML that remembers where every key and value came from.

Called by ``llmops.manifests.loader``. Built on libyaml's composer (fast), with our
own constructor: only plain scalars, lists and mappings come out; unknown tags,
duplicate keys, non-scalar keys and alias bombs are errors with a line and column.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]

#: Nodes constructed per document, aliases expanded; bounds "billion laughs".
MAX_NODES = 200_000
#: Nesting depth; bounds recursive aliases and pathological documents.
MAX_DEPTH = 64

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_scalars = SafeConstructor()

_TAG = "tag:yaml.org,2002:"
_SCALAR_BUILDERS = {
    _TAG + "null": _scalars.construct_yaml_null,
    _TAG + "bool": _scalars.construct_yaml_bool,
    _TAG + "int": _scalars.construct_yaml_int,
    _TAG + "float": _scalars.construct_yaml_float,
    _TAG + "str": _scalars.construct_yaml_str,
    # Dates stay text: manifests never need datetime objects.
    _TAG + "timestamp": _scalars.construct_yaml_str,
}


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based line and column."""

    line: int
    column: int


class YamlError(Exception):
    """A document that is not acceptable YAML; ``mark`` says where."""

    def __init__(self, message: str, mark: Mark) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


@dataclass(frozen=True, slots=True)
class YamlDoc:
    """Plain data plus the position of every value (``marks``) and mapping key (``key_marks``)."""

    data: Any
    marks: dict[Path, Mark]
    key_marks: dict[Path, Mark]

    def mark_for(self, path: Path, *, key: bool = False) -> Mark:
        """The position of the deepest existing prefix of ``path``."""
        probe = tuple(path)
        while probe:
            found = (self.key_marks if key else self.marks).get(probe) or self.marks.get(probe)
            if found:
                return found
            probe = probe[:-1]
        return self.marks.get((), Mark(1, 1))


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def parse(text: str) -> YamlDoc:
    """Parse one YAML document; an empty document gives ``data=None``."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        problem = exc.problem or "invalid YAML"
        if "expected a single document" in str(exc):
            problem = "a manifest file holds one YAML document; split the others into their own files"
        raise YamlError(f"YAML syntax error: {problem}", where) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"YAML syntax error: {exc}", Mark(1, 1)) from None
    finally:
        loader.dispose()
    if root is None:
        return YamlDoc(None, {(): Mark(1, 1)}, {})
    builder = _Builder()
    data = builder.build(root, (), 0)
    return YamlDoc(data, builder.marks, builder.key_marks)


class _Builder:
    def __init__(self) -> None:
        self.marks: dict[Path, Mark] = {}
        self.key_marks: dict[Path, Mark] = {}
        self.count = 0

    def build(self, node: Node, path: Path, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlError(
                f"document expands to more than {MAX_NODES} values (anchors and aliases?); "
                "manifests must be small",
                _mark(node),
            )
        if depth > MAX_DEPTH:
            raise YamlError(
                f"document nests deeper than {MAX_DEPTH} levels (a recursive alias?)", _mark(node)
            )
        self.marks.setdefault(path, _mark(node))
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if isinstance(node, SequenceNode):
            self._plain_tag(node, "seq")
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            self._plain_tag(node, "map")
            return self._mapping(node, path, depth)
        raise YamlError("unsupported YAML node", _mark(node))  # pragma: no cover

    def _plain_tag(self, node: Node, kind: str) -> None:
        if node.tag != _TAG + kind:
            raise YamlError(f"unsupported YAML tag {node.tag!r}; remove it", _mark(node))

    def _scalar(self, node: ScalarNode) -> Any:
        builder = _SCALAR_BUILDERS.get(node.tag)
        if builder is None:
            raise YamlError(
                f"unsupported YAML tag {node.tag!r}; only plain values, lists and mappings are allowed",
                _mark(node),
            )
        try:
            return builder(node)
        except (ValueError, yaml.YAMLError) as exc:
            raise YamlError(f"cannot read value {node.value!r}: {exc}", _mark(node)) from None

    def _pairs(self, node: MappingNode, depth: int) -> Iterator[tuple[Node, Node]]:
        """Key/value pairs with ``<<`` merge keys expanded (explicit keys win)."""
        merged: list[tuple[Node, Node]] = []
        own: list[tuple[Node, Node]] = []
        for key, value in node.value:
            if key.tag == _TAG + "merge":
                sources = value.value if isinstance(value, SequenceNode) else [value]
                for source in sources:
                    if not isinstance(source, MappingNode):
                        raise YamlError("'<<' merges only mappings", _mark(source))
                    if depth > MAX_DEPTH:
                        raise YamlError("merge keys nest too deeply", _mark(source))
                    merged.extend(self._pairs(source, depth + 1))
            else:
                own.append((key, value))
        own_keys = {k.value for k, _ in own if isinstance(k, ScalarNode)}
        yield from ((k, v) for k, v in merged if k.value not in own_keys)
        yield from own

    def _mapping(self, node: MappingNode, path: Path, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged_seen: set[str] = set()
        for key_node, value_node in self._pairs(node, depth):
            if not isinstance(key_node, ScalarNode):
                raise YamlError("mapping keys must be plain text, not lists or mappings", _mark(key_node))
            key = str(key_node.value)
            child = (*path, key)
            if key in result:
                if key in merged_seen:
                    merged_seen.discard(key)
                else:
                    first = self.key_marks.get(child)
                    where = f" (first at line {first.line})" if first else ""
                    raise YamlError(f"duplicate key {key!r}{where}; keep one", _mark(key_node))
            self.key_marks[child] = _mark(key_node)
            result[key] = self.build(value_node, child, depth + 1)
        return result
