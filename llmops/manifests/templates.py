"""Static checks of prompt templates: they parse in Jinja2's sandbox and use only
declared inputs, built-ins and templates that exist inside the app.

Called by ``llmops.manifests.xref``. Nothing is rendered here.
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(autoescape=False)
_GLOBALS = frozenset(_ENV.globals)


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """One problem in a template file, at a 1-based line."""

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    """What a template needs: free variables (with the first line each is used) and includes."""

    variables: dict[str, int]
    references: tuple[str | None, ...]


def analyse(source: str) -> TemplateInfo | TemplateProblem:
    """Parse ``source``; a syntax error comes back as a problem, never raised."""
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        return TemplateProblem(exc.lineno or 1, f"template syntax error: {exc.message}")
    free = meta.find_undeclared_variables(ast) - _GLOBALS
    first_line: dict[str, int] = {}
    for name in ast.find_all(nodes.Name):
        if name.name in free and name.ctx == "load":
            first_line.setdefault(name.name, name.lineno)
    for missing in free - set(first_line):
        first_line[missing] = 1
    return TemplateInfo(first_line, tuple(meta.find_referenced_templates(ast)))
