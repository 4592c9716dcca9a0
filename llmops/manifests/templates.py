"""Static checks of prompt templates: they parse in Jinja2's sandbox and use only
declared inputs, built-ins and templates that exist inside the app.

Called by ``llmops.manifests.xref``. Nothing is rendered here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(autoescape=False)
_GLOBALS = frozenset(_ENV.globals)
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


def analyse(source: str) -> TemplateInfo | TemplateProblem:
    """Parse ``source``; a syntax error comes back as a problem, never raised.

    One pass over the AST finds free variables (loaded and never bound by ``set``,
    ``for``, ``with`` or macro parameters), unknown filters and tests, and references
    to other templates. It replaces ``jinja2.meta.find_undeclared_variables``, which
    runs the whole code generator and costs several times more.
    """
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        return TemplateProblem(exc.lineno or 1, f"template syntax error: {exc.message}")
    loaded: dict[str, int] = {}
    bound: set[str] = set(_ALWAYS_BOUND)
    for node in ast.find_all((nodes.Name, nodes.Macro, nodes.CallBlock, nodes.Filter, nodes.Test)):
        if isinstance(node, nodes.Name):
            if node.ctx == "load":
                loaded.setdefault(node.name, node.lineno)
            else:
                bound.add(node.name)
        elif isinstance(node, nodes.Filter | nodes.Test):
            known = _ENV.filters if isinstance(node, nodes.Filter) else _ENV.tests
            if node.name not in known:
                what = "filter" if isinstance(node, nodes.Filter) else "test"
                return TemplateProblem(
                    node.lineno,
                    f"template error: no {what} named {node.name!r}; "
                    f"only Jinja2's built-in {what}s are available",
                )
        else:
            bound.update(arg.name for arg in cast(nodes.Macro | nodes.CallBlock, node).args)
            if isinstance(node, nodes.Macro):
                bound.add(node.name)
    free = {
        name: line for name, line in loaded.items() if name not in bound and name not in _GLOBALS
    }
    references: list[str | None] = []
    lines: list[int] = []
    for node in ast.find_all((nodes.Extends, nodes.FromImport, nodes.Import, nodes.Include)):
        for ref in meta.find_referenced_templates(nodes.Template([node])):
            references.append(ref)
            lines.append(node.lineno)
    return TemplateInfo(free, tuple(references), tuple(lines))
