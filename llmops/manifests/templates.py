"""Static checks of prompt templates: they parse in Jinja2's sandbox and use only
declared inputs, built-ins and templates that exist inside the app.

Called by ``llmops.manifests.xref``. Nothing is rendered here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

#: The names Jinja2 puts in every environment's globals (``jinja2.defaults``; the
#: sandbox swaps in its own ``range``); a test keeps this equal to the real set.
_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace"})
#: Names Jinja2 binds inside loops, macros and call blocks.
_ALWAYS_BOUND = frozenset({"loop", "caller", "varargs", "kwargs", "self"})


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """One problem in a template file, at a 1-based line."""

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    """What a template needs: free variables (with the first line each is used) and the
    templates it includes, imports or extends (None for a computed name), each with the
    line it is named on in ``reference_lines``."""

    variables: dict[str, int]
    references: tuple[str | None, ...]
    reference_lines: tuple[int, ...] = ()


@cache
def environment() -> SandboxedEnvironment:
    """The sandboxed Jinja2 environment templates are parsed in (imported on first use)."""
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(autoescape=False)


def analyse(source: str) -> TemplateInfo | TemplateProblem:
    """Parse ``source``; a syntax error comes back as a problem, never raised.

    Templates made only of ``{{ expression }}`` tags, ``if``/``elif``/``else``/``endif``
    blocks and comments over names, quoted strings and integers compared with ``==``
    and ``!=`` (and ``not``, ``and``, ``or``, ``x if y else z``) are read without Jinja2:
    the answer is the same (a test compares them). Anything else, or anything wrong,
    goes through :func:`analyse_jinja`, which also words the errors.
    """
    simple = _analyse_simple(source)
    return simple if simple is not None else analyse_jinja(source)


class _NotSimple(Exception):
    """The template uses more than the simple reader understands."""


#: Where a tag can start: Jinja2's ``{{``, ``{%`` and ``{#``.
_TAG_START = re.compile(r"\{[{%#]")
#: One token inside a tag, after optional spaces: an end of tag, a comparison, a quoted
#: string without escapes or newlines, a decimal integer, or an ASCII name.
_TOKEN = re.compile(
    r" *(?:(?P<end>-?[}%]\})|(?P<op>==|!=)|\"(?P<dq>[^\"\\\n]*)\"|'(?P<sq>[^'\\\n]*)'"
    r"|(?P<int>(?:[1-9][0-9]*|0)(?![0-9A-Za-z_.]))|(?P<name>[A-Za-z_][A-Za-z0-9_]*))"
)
#: Names Jinja2 reads as constants.
_CONSTANTS = frozenset({"true", "false", "none", "True", "False", "None"})
#: Names with a grammatical role (operators, tests, the inline if).
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "if", "else", "elif"})


def _analyse_simple(source: str) -> TemplateInfo | None:
    """The analysis of a simple template (see :func:`analyse`), or None."""
    if "\r" in source:  # Jinja2 counts lines after normalising \r\n and \r
        return None
    loaded: dict[str, int] = {}
    #: open ``if`` blocks: whether each has seen its ``else``
    blocks: list[bool] = []
    line, pos = 1, 0
    try:
        while (match := _TAG_START.search(source, pos)) is not None:
            start = match.start()
            line += source.count("\n", pos, start)
            kind = source[start + 1]
            if kind == "#":
                end = source.find("#}", start + 2)
                if end < 0:
                    return None
                line += source.count("\n", start, end)
                pos = end + 2
                continue
            tokens, pos = _tag_tokens(source, start + 2, "}" if kind == "{" else "%")
            names: list[str] = []
            if kind == "{":
                _Expression(tokens, names, inline_if=True).whole()
            else:
                _statement(tokens, names, blocks)
            for name in names:
                loaded.setdefault(name, line)
    except _NotSimple:
        return None
    if blocks:
        return None
    free = {
        name: at
        for name, at in loaded.items()
        if name not in _ALWAYS_BOUND and name not in _GLOBALS
    }
    return TemplateInfo(free, (), ())


def _tag_tokens(source: str, pos: int, closer: str) -> tuple[list[tuple[str, str]], int]:
    """The tokens of the tag whose body starts at ``pos`` and the position after it."""
    if source.startswith("-", pos):
        pos += 1  # whitespace control; it changes no name and no line
    tokens: list[tuple[str, str]] = []
    while True:
        match = _TOKEN.match(source, pos)
        if match is None:
            raise _NotSimple
        pos = match.end()
        kind = match.lastgroup
        assert kind is not None
        if kind == "end":
            if match.group("end")[-2] != closer:
                raise _NotSimple
            return tokens, pos
        value = match.group(kind)
        tokens.append(("str", value) if kind in ("dq", "sq") else (kind, value))


def _statement(tokens: list[tuple[str, str]], names: list[str], blocks: list[bool]) -> None:
    if not tokens or tokens[0][0] != "name":
        raise _NotSimple
    keyword, rest = tokens[0][1], tokens[1:]
    if keyword in ("if", "elif"):
        if keyword == "elif" and (not blocks or blocks[-1]):
            raise _NotSimple
        _Expression(rest, names, inline_if=False).whole()
        if keyword == "if":
            blocks.append(False)
    elif keyword == "else" and not rest and blocks and not blocks[-1]:
        blocks[-1] = True
    elif keyword == "endif" and not rest and blocks:
        blocks.pop()
    else:
        raise _NotSimple


class _Expression:
    """Jinja2's expression grammar, cut down to names, literals, ``==``/``!=``, ``not``,
    ``and``, ``or`` and the inline ``if``; names are listed in the order Jinja2's AST
    walk meets them."""

    def __init__(self, tokens: list[tuple[str, str]], names: list[str], *, inline_if: bool):
        self.tokens = tokens
        self.at = 0
        self.names = names
        self.inline_if = inline_if

    def whole(self) -> None:
        self.names.extend(self.condexpr() if self.inline_if else self.or_())
        if self.at != len(self.tokens):
            raise _NotSimple

    def _keyword(self, word: str) -> bool:
        if self.at < len(self.tokens) and self.tokens[self.at] == ("name", word):
            self.at += 1
            return True
        return False

    def condexpr(self) -> list[str]:
        # CondExpr(test, expr1, expr2) is walked test first: list names in that order.
        value = self.or_()
        while self._keyword("if"):
            test = self.or_()
            other = self.condexpr() if self._keyword("else") else []
            value = test + value + other
        return value

    def or_(self) -> list[str]:
        value = self.and_()
        while self._keyword("or"):
            value = value + self.and_()
        return value

    def and_(self) -> list[str]:
        value = self.not_()
        while self._keyword("and"):
            value = value + self.not_()
        return value

    def not_(self) -> list[str]:
        if self._keyword("not"):
            return self.not_()
        value = self.primary()
        if self.at < len(self.tokens) and self.tokens[self.at][0] == "op":
            self.at += 1
            value = value + self.primary()
        return value

    def primary(self) -> list[str]:
        if self.at >= len(self.tokens):
            raise _NotSimple
        kind, value = self.tokens[self.at]
        self.at += 1
        if kind in ("str", "int") or (kind == "name" and value in _CONSTANTS):
            return []
        if kind == "name" and value not in _KEYWORDS:
            return [value]
        raise _NotSimple


def analyse_jinja(source: str) -> TemplateInfo | TemplateProblem:
    """Parse ``source`` with Jinja2 and walk its AST once.

    The walk finds free variables (loaded and never bound by ``set``, ``for``, ``with``
    or macro parameters), unknown filters and tests, and references to other
    templates. It replaces ``jinja2.meta.find_undeclared_variables``, which runs the
    whole code generator and costs several times more.
    """
    from jinja2 import TemplateSyntaxError, meta, nodes

    env = environment()
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        return TemplateProblem(exc.lineno or 1, f"template syntax error: {exc.message}")
    loaded: dict[str, int] = {}
    bound: set[str] = set(_ALWAYS_BOUND)
    referencing: list[nodes.Node] = []
    wanted = (
        nodes.Name, nodes.Macro, nodes.CallBlock, nodes.Filter, nodes.Test,
        nodes.Extends, nodes.FromImport, nodes.Import, nodes.Include,
    )  # fmt: skip
    for node in ast.find_all(wanted):
        if isinstance(node, nodes.Name):
            if node.ctx == "load":
                loaded.setdefault(node.name, node.lineno)
            else:
                bound.add(node.name)
        elif isinstance(node, nodes.Filter | nodes.Test):
            known = env.filters if isinstance(node, nodes.Filter) else env.tests
            if node.name not in known:
                what = "filter" if isinstance(node, nodes.Filter) else "test"
                return TemplateProblem(
                    node.lineno,
                    f"template error: no {what} named {node.name!r}; "
                    f"only Jinja2's built-in {what}s are available",
                )
        elif isinstance(node, nodes.Macro | nodes.CallBlock):
            bound.update(arg.name for arg in node.args)
            if isinstance(node, nodes.Macro):
                bound.add(node.name)
        else:
            referencing.append(node)
    free = {
        name: line for name, line in loaded.items() if name not in bound and name not in _GLOBALS
    }
    references: list[str | None] = []
    lines: list[int] = []
    for node in referencing:
        for ref in meta.find_referenced_templates(nodes.Template([node])):
            references.append(ref)
            lines.append(node.lineno)
    return TemplateInfo(free, tuple(references), tuple(lines))
