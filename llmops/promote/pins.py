"""Rewrite one release pin, ``spec.releases.<app>``, in an Environment's YAML text. Pure.

Called by ``llmops.ops.promote`` (promotion and rollback write pins through git). The text
is edited in place at the positions the parser reports (``llmops.manifests.yamldoc``
marks, and the composer's end marks), never re-dumped: comments, key order, quoting,
indentation, a BOM and CRLF line endings stay as written. Handled layouts: a block
mapping, a flow mapping (``releases: {}``, ``releases: {a: x}``), an empty or null
``releases:``, and no ``releases`` key at all (block or flow ``spec``). The result is
parsed again and must be the same document with only that pin changed; otherwise
:class:`PinEditError` is raised and the caller writes nothing.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from llmops.domain.errors import InvalidInput
from llmops.domain.ids import release_id_problem
from llmops.manifests import yamldoc

_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_resolver = yaml.resolver.Resolver()


class PinEditError(InvalidInput):
    """The pin cannot be rewritten in place; the message says why and what to do."""


def read_pin(text: str, app: str) -> str | None:
    """The release pinned for ``app`` in an Environment's text, or None."""
    data = _parse(text.removeprefix("\ufeff")).data
    spec = data.get("spec") if isinstance(data, dict) else None
    releases = spec.get("releases") if isinstance(spec, dict) else None
    value = releases.get(app) if isinstance(releases, dict) else None
    return value if isinstance(value, str) else None


def pin_mark(text: str, app: str) -> yamldoc.Mark:
    """Where ``spec.releases.<app>`` is (or would go): the deepest existing prefix."""
    return _parse(text.removeprefix("\ufeff")).mark_for(("spec", "releases", app))


def set_pin(text: str, app: str, release: str) -> str:
    """``text`` with ``spec.releases.<app>`` set to ``release``; everything else as written."""
    problem = release_id_problem(release)
    if problem:
        raise PinEditError(f"cannot pin {app}: {problem}")
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    body = text[len(bom) :]
    doc = _parse(body)
    expected = _expected(doc.data, app, release)
    if doc.data == expected:
        return text
    root = yaml.compose(body, Loader=_Loader)
    assert isinstance(root, MappingNode)
    spec_pair = _pair(root, "spec")
    assert spec_pair is not None
    spec_key, spec = spec_pair
    assert isinstance(spec, MappingNode)
    edit = _Edit(body, _newline(body))
    found = _pair(spec, "releases")
    if found is None:
        new = edit.add_entry(spec, spec_key, "releases", _Releases(app, release))
    else:
        key, value = found
        if isinstance(value, ScalarNode):  # releases: / releases: null / ~
            new = edit.fill_null(key, value, spec, spec_key, app, release)
        else:
            assert isinstance(value, MappingNode)
            pin = _pair(value, app)
            if pin is not None and isinstance(pin[1], ScalarNode):
                new = edit.replace_scalar(pin[1], release)
            elif pin is not None:
                raise PinEditError(
                    f"spec.releases.{app} is not a single value; set it to a release id by hand"
                )
            else:
                new = edit.add_entry(value, key, app, release)
    result = bom + new
    if _parse(new).data != expected:
        raise PinEditError(
            f"spec.releases.{app} cannot be rewritten in place without changing other values "
            "(anchors, aliases or merge keys around the pins?); set the pin by hand"
        )
    return result


# --------------------------------------------------------------------------- helpers


def _parse(text: str) -> yamldoc.YamlDoc:
    try:
        doc = yamldoc.parse(text)
    except yamldoc.YamlError as exc:
        where = f"line {exc.mark.line}, column {exc.mark.column}"
        raise PinEditError(f"cannot edit the pins: {where}: {exc.message}") from None
    return doc


def _expected(data: Any, app: str, release: str) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("spec"), dict):
        raise PinEditError("not an Environment: there is no spec mapping to hold the pins")
    expected = copy.deepcopy(data)
    releases = expected["spec"].get("releases")
    if releases is None:
        releases = expected["spec"]["releases"] = {}
    if not isinstance(releases, dict):
        raise PinEditError("spec.releases must be a mapping of app name to release id")
    releases[app] = release
    return expected


def _newline(text: str) -> str:
    match = _BREAK.search(text)
    return match.group(0) if match and match.group(0) in ("\r\n", "\r") else "\n"


def _pair(mapping: MappingNode, key: str) -> tuple[ScalarNode, Node] | None:
    """The last direct ``key: value`` pair (merge keys are not direct)."""
    found = None
    for k, v in mapping.value:
        if isinstance(k, ScalarNode) and k.tag != _MERGE_TAG and k.value == key:
            found = (k, v)
    return found


def _pairs(mapping: MappingNode) -> list[tuple[Node, Node]]:
    return [(k, v) for k, v in mapping.value if k.tag != _MERGE_TAG]


def _last_leaf(node: Node) -> Node:
    while isinstance(node, MappingNode) and node.value and not node.flow_style:
        node = node.value[-1][1]
    return node


def _plain_safe(text: str) -> bool:
    """True when ``text`` reads back as the same string when written plain."""
    tag = _resolver.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return tag == _STR_TAG and not re.search(
        r"^[-?:,\[\]{}#&*!|>'\"%@`\s]|[:#]\s|\s$|[,\[\]{}]", text
    )


def _key(text: str) -> str:
    return text if _plain_safe(text) else '"' + text + '"'


def _styled(text: str, style: str | None) -> str:
    if style == "'":
        return f"'{text}'"
    if style == '"' or not _plain_safe(text):
        return f'"{text}"'
    return text


class _Releases:
    """A ``releases`` value to add: one pin, rendered for block or flow context."""

    def __init__(self, app: str, release: str) -> None:
        self.app = app
        self.release = release

    def block(self, indent: str, nl: str) -> str:
        return f"{nl}{indent}{_key(self.app)}: {_styled(self.release, None)}"

    def flow(self) -> str:
        return f'{{{_key(self.app)}: "{self.release}"}}'


class _Edit:
    def __init__(self, text: str, nl: str) -> None:
        self.text = text
        self.nl = nl

    def _splice(self, start: int, end: int, insert: str) -> str:
        return self.text[:start] + insert + self.text[end:]

    def _after_line(self, index: int) -> tuple[int, bool]:
        """Where the line holding ``index`` ends (after its break); whether it had a break."""
        if index > 0 and _BREAK.match(self.text[index - 1]):
            return index, True
        match = _BREAK.search(self.text, index)
        return (match.end(), True) if match else (len(self.text), False)

    def _line_end(self, index: int) -> int:
        """The position of the line break ending the line that holds ``index``."""
        match = _BREAK.search(self.text, index)
        return match.start() if match else len(self.text)

    def _indent_of(self, index: int) -> str:
        """The leading spaces of the line holding ``index``."""
        start = index
        while start > 0 and not _BREAK.match(self.text[start - 1]):
            start -= 1
        line = self.text[start:index]
        return line[: len(line) - len(line.lstrip(" "))]

    def _unit(self, mapping: MappingNode, key: ScalarNode | None) -> str:
        """One level of indentation, as this file writes it (default two spaces)."""
        pairs = _pairs(mapping)
        if key is not None and pairs and not mapping.flow_style:
            step = pairs[0][0].start_mark.column - key.start_mark.column
            if step > 0:
                return " " * step
        return "  "

    def replace_scalar(self, node: ScalarNode, release: str) -> str:
        style = node.style if node.style in ("'", '"') else None
        if node.style in ("|", ">"):
            style = '"'
        return self._splice(node.start_mark.index, node.end_mark.index, _styled(release, style))

    def add_entry(
        self, mapping: MappingNode, mapping_key: ScalarNode | None, key: str, value: str | _Releases
    ) -> str:
        # position after the last entry, merge keys included; copy the style of a direct one
        pairs = list(mapping.value)
        direct = _pairs(mapping)
        neighbour = direct[-1][1] if direct else None
        # a new pin is quoted like its neighbour; the first one in {} like DESIGN.md's example
        style = (
            neighbour.style
            if isinstance(neighbour, ScalarNode)
            else ('"' if mapping.flow_style else None)
        )
        if mapping.flow_style:
            rendered = value.flow() if isinstance(value, _Releases) else _styled(value, style)
            return self._add_flow(mapping, pairs, f"{_key(key)}: {rendered}")
        last = pairs[-1][1]  # a block mapping has at least one entry
        indent = " " * pairs[0][0].start_mark.column
        if isinstance(value, _Releases):
            rendered = value.block(indent + self._unit(mapping, mapping_key), self.nl)
        else:
            rendered = " " + _styled(value, style)
        at, had_break = self._after_line(_last_leaf(last).end_mark.index)
        line = f"{indent}{_key(key)}:{rendered}"
        insert = line + self.nl if had_break else self.nl + line
        return self._splice(at, at, insert)

    def _add_flow(self, mapping: MappingNode, pairs: list[tuple[Node, Node]], entry: str) -> str:
        if not pairs:  # {} -> {key: value}
            at = mapping.start_mark.index + 1
            return self._splice(at, at, entry)
        last_key, last = pairs[-1]
        end = last.end_mark.index
        close = mapping.end_mark.index - 1  # the '}'
        line_end = self._line_end(end)
        if last_key.start_mark.line == mapping.start_mark.line:  # {a: x} on one line
            return self._splice(end, end, ", " + entry)
        indent = self._indent_of(last_key.start_mark.index)
        if close < line_end:  # '}' right after the last entry: a new line before it
            return self._splice(end, end, f",{self.nl}{indent}{entry}")
        # one entry per line: a line of its own after the last one, comments stay put
        rest = self.text[end:line_end]
        trailing = rest.lstrip().startswith(",")
        at, _ = self._after_line(end)
        line = f"{indent}{entry}{',' if trailing else ''}{self.nl}"
        text = self._splice(at, at, line)
        return text if trailing else text[:end] + "," + text[end:]

    def fill_null(
        self,
        key: ScalarNode,
        value: ScalarNode,
        spec: MappingNode,
        spec_key: ScalarNode,
        app: str,
        release: str,
    ) -> str:
        pins = _Releases(app, release)
        if value.start_mark.index != value.end_mark.index or spec.flow_style:
            # releases: null / ~ (or an empty value inside a flow spec) -> a flow mapping
            lead = "" if value.start_mark.index != value.end_mark.index else " "
            return self._splice(value.start_mark.index, value.end_mark.index, lead + pins.flow())
        # releases:   (nothing, maybe a comment) -> a block mapping on the next line
        indent = " " * key.start_mark.column + self._unit(spec, spec_key)
        at = self._line_end(key.end_mark.index)
        return self._splice(at, at, pins.block(indent, self.nl))
