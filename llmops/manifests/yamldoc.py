"""Safe YAML that remembers where every key and value came from.

Called by ``llmops.manifests.loader``. Built on libyaml's composer (fast), with our
own constructor: only plain scalars, lists and mappings come out; unknown tags,
duplicate keys, non-scalar keys and alias bombs are errors with a line and column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]

#: Nodes constructed per document, aliases expanded; bounds "billion laughs".
MAX_NODES = 200_000
#: Nesting depth; bounds recursive aliases and pathological documents.
MAX_DEPTH = 64

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVERS: dict[str, tuple[tuple[str, Any], ...]] = {
    first: tuple(pairs) for first, pairs in yaml.SafeLoader.yaml_implicit_resolvers.items() if first
}
_EMPTY_RESOLVERS = tuple(yaml.SafeLoader.yaml_implicit_resolvers.get("", ()))


class _Loader(_BaseLoader):  # type: ignore[misc]
    """libyaml's parser and composer with a lean tag resolver.

    PyYAML's resolver runs in Python for every node and supports path resolvers we never
    register; this one gives the same YAML 1.1 tags (same regular expressions, keyed by
    first character) at a fraction of the cost, and skips the per-node path bookkeeping.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            if implicit[0]:
                for tag, regexp in _RESOLVERS.get(value[0], ()) if value else _EMPTY_RESOLVERS:
                    if regexp.match(value):
                        return str(tag)
            return _TAG + "str"
        return _TAG + ("seq" if kind is SequenceNode else "map")

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None
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
    """A document that is not acceptable YAML; ``mark`` says where, ``path`` in which field."""

    def __init__(self, message: str, mark: Mark, path: Path = ()) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark
        self.path = path


class YamlDoc:
    """Plain data, and the composed node tree that says where each value came from.

    Positions are looked up on demand by walking the node tree along a path, so a
    valid file costs nothing for them; ``marks`` and ``key_marks`` build the full maps
    (for tests and tools).
    """

    __slots__ = ("_key_marks", "_marks", "_root", "_text", "data")

    def __init__(self, data: Any, root: Node | None, text: str | None = None) -> None:
        self.data = data
        self._root = root
        self._text = text
        self._marks: dict[Path, Mark] | None = None
        self._key_marks: dict[Path, Mark] | None = None

    @property
    def root(self) -> Node | None:
        """The node tree, composed on first use when the fast path built the data."""
        if self._root is None and self._text is not None and self.data is not None:
            self._root = _compose(self._text)
            self._text = None
        return self._root

    def mark_for(self, path: Path, *, key: bool = False) -> Mark:
        """The position of ``path`` (of its key with ``key=True``), or of its deepest
        existing prefix."""
        node = self.root
        if node is None:
            return Mark(1, 1)
        found = _mark(node)
        for index, part in enumerate(path):
            last = index == len(path) - 1
            if isinstance(node, MappingNode) and isinstance(part, str):
                pair = _find_pair(node, part)
                if pair is None:
                    return found
                if last and key:
                    return _mark(pair[0])
                node = pair[1]
            elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
            else:
                return found
            found = _mark(node)
        return found

    @property
    def marks(self) -> dict[Path, Mark]:
        if self._marks is None:
            self._walk()
        assert self._marks is not None
        return self._marks

    @property
    def key_marks(self) -> dict[Path, Mark]:
        if self._key_marks is None:
            self._walk()
        assert self._key_marks is not None
        return self._key_marks

    def _walk(self) -> None:
        marks: dict[Path, Mark] = {}
        key_marks: dict[Path, Mark] = {}
        if self.root is None:
            marks[()] = Mark(1, 1)

        def visit(node: Node, path: Path, depth: int) -> None:
            marks.setdefault(path, _mark(node))
            if depth > MAX_DEPTH:
                return
            if isinstance(node, SequenceNode):
                for i, item in enumerate(node.value):
                    visit(item, (*path, i), depth + 1)
            elif isinstance(node, MappingNode):
                for key_node, value_node in _expanded_pairs(node, 0):
                    child = (*path, str(key_node.value))
                    key_marks.setdefault(child, _mark(key_node))
                    visit(value_node, child, depth + 1)

        if self.root is not None:
            visit(self.root, (), 0)
        self._marks, self._key_marks = marks, key_marks


def _find_pair(node: MappingNode, key: str) -> tuple[Node, Node] | None:
    """The pair for ``key`` in a mapping, merge keys followed (explicit keys win)."""
    for pair in _expanded_pairs(node, 0):
        if isinstance(pair[0], ScalarNode) and str(pair[0].value) == key:
            return pair
    return None


def _expanded_pairs(node: MappingNode, depth: int) -> list[tuple[Node, Node]]:
    """Pairs with ``<<`` merges expanded: explicit keys win, then the first merged source."""
    own: list[tuple[Node, Node]] = []
    merged: dict[str, tuple[Node, Node]] = {}
    for key, value in node.value:
        if key.tag == _TAG + "merge" and depth <= MAX_DEPTH:
            sources = value.value if isinstance(value, SequenceNode) else [value]
            for source in sources:
                if isinstance(source, MappingNode):
                    for pair in _expanded_pairs(source, depth + 1):
                        if isinstance(pair[0], ScalarNode):
                            merged.setdefault(str(pair[0].value), pair)
        else:
            own.append((key, value))
    own_keys = {str(k.value) for k, _ in own if isinstance(k, ScalarNode)}
    return [pair for name, pair in merged.items() if name not in own_keys] + own


_CONTEXTS = {
    "flow sequence": "in the list opened by '['",
    "flow mapping": "in the mapping opened by '{'",
    "quoted scalar": "in the quoted text opened",
    "block mapping": "in the mapping starting",
    "block collection": "in the list starting",
}


def _indented_by_tab(text: str, line: int, column: int) -> bool:
    """Whether the 0-based ``line`` and ``column`` is a tab in the line's indentation."""
    lines = text.split("\n")
    if line >= len(lines) or column >= len(lines[line]):
        return False
    return lines[line][column] == "\t" and not lines[line][:column].strip(" \t")


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _tag(tag: str) -> str:
    """A tag as it is written in YAML: ``!!python/object`` rather than its full URI."""
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def parse(text: str) -> YamlDoc:
    """Parse one YAML document; an empty document gives ``data=None``.

    Plain documents (no anchors, aliases, merge keys or tags: nearly every manifest)
    are built straight from libyaml's events, and their node tree — needed only to
    place a diagnostic — is composed on first use. Anything else, and every error, goes
    through the node-tree builder, which is the one that words the errors.
    """
    try:
        data = _EventBuilder(text).document()
    except _Fallback:
        return _parse_nodes(text)
    return YamlDoc(data, None, text)


def _parse_nodes(text: str) -> YamlDoc:
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        problem = exc.problem or "invalid YAML"
        if "expected a single document" in str(exc):
            problem = (
                "a manifest file holds one YAML document; split the others into their own files"
            )
        elif mark is not None and _indented_by_tab(text, mark.line, mark.column):
            problem = "a tab cannot indent YAML; indent with spaces"
        elif exc.context and exc.context_mark:
            # An unclosed [ or quote is noticed later than where it opened: say where.
            opened = next((v for k, v in _CONTEXTS.items() if k in exc.context), None)
            start = exc.context_mark
            if opened:
                problem += f" ({opened} at line {start.line + 1}, column {start.column + 1})"
        raise YamlError(f"YAML syntax error: {problem}", where) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"YAML syntax error: {exc}", Mark(1, 1)) from None
    finally:
        loader.dispose()
    if root is None:
        return YamlDoc(None, None)
    builder = _Builder()
    data = builder.build(root, 0)
    return YamlDoc(data, root)


def _compose(text: str) -> Node | None:
    loader = _Loader(text)
    try:
        return loader.get_single_node()  # type: ignore[no-any-return]
    finally:
        loader.dispose()


class _Fallback(Exception):
    """The fast path met something it leaves to the node-tree builder."""


class _EventBuilder:
    """Plain data from libyaml's event stream, for plain documents only.

    It raises ``_Fallback`` at the first anchor, alias, tag, merge key, duplicate key,
    non-scalar key, unusual scalar, excess depth or size, second document or syntax
    error; ``parse`` then starts over with the node-tree builder.
    """

    __slots__ = ("count", "get_event", "loader")

    def __init__(self, text: str) -> None:
        self.loader = _Loader(text)
        self.get_event = self.loader.get_event
        self.count = 0

    def document(self) -> Any:
        try:
            self.get_event()  # StreamStart
            event = self.get_event()
            if isinstance(event, StreamEndEvent):
                return None
            if not isinstance(event, DocumentStartEvent):
                raise _Fallback
            data = self.value(self.get_event(), 0)
            if not isinstance(self.get_event(), DocumentEndEvent):
                raise _Fallback
            if not isinstance(self.get_event(), StreamEndEvent):
                raise _Fallback
            return data
        except yaml.YAMLError:
            raise _Fallback from None
        finally:
            self.loader.dispose()

    def value(self, event: Any, depth: int) -> Any:
        self.count += 1
        if depth > MAX_DEPTH or self.count > MAX_NODES or event.anchor is not None:
            raise _Fallback
        cls = event.__class__
        if cls is ScalarEvent:
            if event.tag is not None:
                raise _Fallback
            if not event.implicit[0]:
                return event.value
            return _plain(event.value)
        get_event = self.get_event
        if cls is MappingStartEvent:
            if event.tag is not None:
                raise _Fallback
            result: dict[str, Any] = {}
            while True:
                key = get_event()
                if key.__class__ is not ScalarEvent:
                    if key.__class__ is MappingEndEvent:
                        return result
                    raise _Fallback
                if key.anchor is not None or key.tag is not None:
                    raise _Fallback
                name = key.value
                if name in result or (name == "<<" and key.implicit[0]):
                    raise _Fallback
                item = get_event()
                if item.__class__ is ScalarEvent and item.anchor is None and item.tag is None:
                    # A plain value, the commonest case, without the call.
                    self.count += 1
                    if depth >= MAX_DEPTH or self.count > MAX_NODES:
                        raise _Fallback
                    result[name] = _plain(item.value) if item.implicit[0] else item.value
                else:
                    result[name] = self.value(item, depth + 1)
        if cls is SequenceStartEvent:
            if event.tag is not None:
                raise _Fallback
            items: list[Any] = []
            while True:
                item = get_event()
                if item.__class__ is ScalarEvent and item.anchor is None and item.tag is None:
                    self.count += 1
                    if depth >= MAX_DEPTH or self.count > MAX_NODES:
                        raise _Fallback
                    items.append(_plain(item.value) if item.implicit[0] else item.value)
                elif item.__class__ is SequenceEndEvent:
                    return items
                else:
                    items.append(self.value(item, depth + 1))
        raise _Fallback


#: Short plain scalars already read, by their text (values are immutable: str, int,
#: float, bool, None); bounded so a long-running process does not grow it without end.
_PLAIN: dict[str, Any] = {}
_PLAIN_MAX = 20_000
_PLAIN_LONGEST = 64


def _plain(text: str) -> Any:
    """The value of an untagged plain scalar, resolved as YAML 1.1 (via ``_RESOLVERS``)."""
    try:
        return _PLAIN[text]
    except KeyError:
        pass
    tag = _STR
    if text:
        for candidate, regexp in _RESOLVERS.get(text[0], ()):
            if regexp.match(text):
                tag = str(candidate)
                break
    else:
        for candidate, regexp in _EMPTY_RESOLVERS:
            if regexp.match(text):
                tag = str(candidate)
                break
    if tag == _STR:
        value: Any = text
    else:
        builder = _SCALAR_BUILDERS.get(tag)
        if builder is None:
            raise _Fallback
        try:
            value = builder(ScalarNode(tag, text))
        except (ValueError, yaml.YAMLError):
            raise _Fallback from None
    if len(text) <= _PLAIN_LONGEST:
        if len(_PLAIN) >= _PLAIN_MAX:
            _PLAIN.clear()
        _PLAIN[text] = value
    return value


_STR, _SEQ, _MAP, _MERGE = _TAG + "str", _TAG + "seq", _TAG + "map", _TAG + "merge"


class _Builder:
    """Builds plain data from the node tree, aliases expanded within a budget.

    The hot path keeps no positions: ``stack`` holds the keys and indexes of the
    current path, turned into a tuple only when an error is raised.
    """

    def __init__(self) -> None:
        self.count = 0
        self.stack: list[str | int] = []

    def _error(self, message: str, node: Node, extra: tuple[str | int, ...] = ()) -> YamlError:
        return YamlError(message, _mark(node), (*self.stack, *extra))

    def build(self, node: Node, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlError(
                f"document expands to more than {MAX_NODES:,} values (anchors and aliases?); "
                "manifests must be small: expand fewer aliases",
                _mark(node),
            )
        if depth > MAX_DEPTH:
            raise YamlError(
                f"document nests deeper than {MAX_DEPTH} levels (a recursive alias?)", _mark(node)
            )
        cls = node.__class__
        if cls is ScalarNode:
            if node.tag == _STR:
                return node.value
            return self._scalar(cast(ScalarNode, node))
        if cls is SequenceNode:
            if node.tag != _SEQ:
                raise _unsupported_tag(node, tuple(self.stack))
            items = []
            stack = self.stack
            for index, item in enumerate(node.value):
                stack.append(index)
                items.append(self.build(item, depth + 1))
                stack.pop()
            return items
        if cls is MappingNode:
            if node.tag != _MAP:
                raise _unsupported_tag(node, tuple(self.stack))
            return self._mapping(cast(MappingNode, node), depth)
        raise YamlError("unsupported YAML node", _mark(node))  # pragma: no cover

    def _scalar(self, node: ScalarNode) -> Any:
        builder = _SCALAR_BUILDERS.get(node.tag)
        if builder is None:
            raise _unsupported_tag(node, tuple(self.stack))
        try:
            return builder(node)
        except (ValueError, yaml.YAMLError) as exc:
            raise self._error(f"cannot read value {node.value!r}: {exc}", node) from None

    def _pairs(self, node: MappingNode, depth: int) -> list[tuple[Node, Node]]:
        """Key/value pairs with ``<<`` merge keys expanded: explicit keys win over merged
        ones, and of merged keys the first source wins (YAML's merge-key rules)."""
        if not any(key.tag == _MERGE for key, _ in node.value):
            return node.value  # type: ignore[no-any-return]
        merged: dict[str, tuple[Node, Node]] = {}
        own: list[tuple[Node, Node]] = []
        for key, value in node.value:
            if key.tag == _MERGE:
                sources = value.value if isinstance(value, SequenceNode) else [value]
                for source in sources:
                    if not isinstance(source, MappingNode):
                        raise YamlError("'<<' merges only mappings", _mark(source))
                    if depth > MAX_DEPTH:
                        raise YamlError("merge keys nest too deeply", _mark(source))
                    for pair in self._pairs(source, depth + 1):
                        self.count += 1
                        if self.count > MAX_NODES:
                            raise YamlError(
                                f"document expands to more than {MAX_NODES:,} values "
                                "(anchors and aliases?); manifests must be small: expand fewer aliases",
                                _mark(pair[0]),
                            )
                        if not isinstance(pair[0], ScalarNode):
                            raise YamlError(_PLAIN_KEYS, _mark(pair[0]))
                        merged.setdefault(str(pair[0].value), pair)
            else:
                own.append((key, value))
        own_keys = {str(k.value) for k, _ in own if isinstance(k, ScalarNode)}
        return [pair for name, pair in merged.items() if name not in own_keys] + own

    def _mapping(self, node: MappingNode, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_key: dict[str, Node] = {}
        stack = self.stack
        for key_node, value_node in self._pairs(node, depth):
            if key_node.__class__ is not ScalarNode:
                raise self._error(_PLAIN_KEYS, key_node)
            key = str(key_node.value)
            if key in result:
                first = first_key[key]
                raise self._error(
                    f"duplicate key {key!r} (first at line {first.start_mark.line + 1}); keep one",
                    key_node,
                    (key,),
                )
            first_key[key] = key_node
            stack.append(key)
            result[key] = self.build(value_node, depth + 1)
            stack.pop()
        return result


_PLAIN_KEYS = "mapping keys must be plain text, not lists or mappings"


def _unsupported_tag(node: Node, path: Path) -> YamlError:
    return YamlError(
        f"unsupported YAML tag {_tag(node.tag)!r}; remove it: only plain values, lists and "
        "mappings are allowed",
        _mark(node),
        path,
    )
