"""A Jinja2 sandbox with resource bounds; used by ``llmops.runtime.render`` to compile and
render prompt templates.

Jinja's ``ImmutableSandboxedEnvironment`` already blocks attribute walks to Python
internals (``__class__``, ``__globals__``, ``mro`` …) and mutation of lists and dicts. It
does not bound work: ``range(10**9)``, ``'a' * 10**9`` or nested loops hang or exhaust
memory. :class:`BoundedSandbox` adds these bounds (all in :class:`RenderLimits`):

- ``range()`` is capped at ``max_range`` items;
- every loop iteration and every call (methods, macros, globals) spends one unit of a
  per-render budget of ``max_steps``; the wall clock is checked against ``max_seconds``;
- every value template code creates (operators, calls, filters, list/dict literals,
  ``~`` concatenation) is measured — its *weight* is the characters it would print as —
  and refused above ``max_value_chars``; operators and methods that amplify (``*``,
  ``**``, ``%``, ``center``, ``replace``, ``join``, format widths …) are checked *before*
  they run, so a refused value is never allocated;
- every printed value, in macros and ``{% set %}`` blocks too, and every loop's static
  text is counted against ``max_emitted_chars``.

Loops and concatenations are bounded by rewriting the template's syntax tree at parse
time (see :class:`_Bounder`); the rewritten nodes call filters whose names start with
``_llmops_``. The checks themselves live in ``llmops.runtime.limits``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar, Token
from typing import Any

from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum, pass_context
from jinja2.visitor import NodeTransformer

from llmops.runtime.limits import (
    FILTER_CHECKS,
    RenderLimitExceeded,
    RenderLimits,
    check_binop,
    check_method,
    too_big,
    weight,
)

__all__ = ["BoundedSandbox", "RenderBudget", "RenderLimitExceeded", "RenderLimits", "render_budget"]

ITER_FILTER = "_llmops_iter"
CAP_FILTER = "_llmops_cap"
CONCAT_FILTER = "_llmops_concat"


class RenderBudget:
    """What one render may still spend; lives in a context variable while rendering."""

    __slots__ = ("deadline", "emitted", "limits", "steps")

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.steps = 0
        self.emitted = 0
        self.deadline = time.monotonic() + limits.max_seconds

    def step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > self.limits.max_steps:
            raise RenderLimitExceeded(
                f"the template ran more than {self.limits.max_steps:,} loop iterations and "
                "calls; rendering is bounded to keep requests fast"
            )
        if self.steps & 0xFF == 0 and time.monotonic() > self.deadline:
            raise RenderLimitExceeded(
                f"rendering took longer than {self.limits.max_seconds:g} s and was stopped"
            )

    def emit(self, chars: int) -> None:
        self.emitted += chars
        if self.emitted > self.limits.max_emitted_chars:
            raise RenderLimitExceeded(
                f"the template produced more than {self.limits.max_emitted_chars:,} characters"
            )


_BUDGET: ContextVar[RenderBudget | None] = ContextVar("llmops_render_budget", default=None)


class BudgetScope:
    """``with render_budget(limits) as budget:``: renders inside the block spend
    ``budget`` (a plain class: cheaper per render than a generator-based manager)."""

    __slots__ = ("budget", "token")

    def __init__(self, limits: RenderLimits) -> None:
        self.budget = RenderBudget(limits)
        self.token: Token[RenderBudget | None] | None = None

    def __enter__(self) -> RenderBudget:
        self.token = _BUDGET.set(self.budget)
        return self.budget

    def __exit__(self, *exc_info: object) -> None:
        if self.token is not None:
            _BUDGET.reset(self.token)
            self.token = None


def render_budget(limits: RenderLimits) -> BudgetScope:
    """Give the renders inside this block a fresh budget (and return it)."""
    return BudgetScope(limits)


class _Bounder(NodeTransformer):
    """Rewrites a parsed template so loops, literals and ``~`` go through bounded filters."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        static = sum(len(d.data) for d in _static_text(node.body))
        node.iter = _filter(node.iter, ITER_FILTER, [nodes.Const(static)], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        operands = nodes.Tuple(node.nodes, "load", lineno=node.lineno)
        return _filter(operands, CONCAT_FILTER, [], node.lineno)

    def _literal(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        return _filter(node, CAP_FILTER, [], node.lineno)

    def visit_List(self, node: nodes.List) -> nodes.Node:
        return self._literal(node)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        return self._literal(node)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        if node.ctx != "load":
            return node
        return self._literal(node)


def _filter(node: nodes.Node, name: str, args: list[nodes.Expr], lineno: int) -> nodes.Filter:
    return nodes.Filter(node, name, args, [], None, None, lineno=lineno)


def _static_text(body: list[nodes.Node]) -> Iterator[nodes.TemplateData]:
    """TemplateData in ``body`` that is not inside a nested loop (which charges its own)."""
    for child in body:
        if isinstance(child, nodes.TemplateData):
            yield child
        elif not isinstance(child, nodes.For):
            yield from _static_text(list(child.iter_child_nodes()))


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """An immutable Jinja2 sandbox whose renders are bounded by :class:`RenderLimits`.

    Render only inside :func:`render_budget`; outside one, loops and calls are unbounded
    in count (values and formats are still checked).
    """

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, limits: RenderLimits | None = None, **options: Any) -> None:
        options.setdefault("finalize", self._finalize)
        super().__init__(**options)
        self.limits = limits or RenderLimits()
        self.globals["range"] = self._range
        self.globals["lipsum"] = self._lipsum
        for name, func in list(self.filters.items()):
            self.filters[name] = self._guarded_filter(name, func)
        self.filters[ITER_FILTER] = self._iter_filter()
        self.filters[CAP_FILTER] = self._cap
        self.filters[CONCAT_FILTER] = self._concat

    # -- parsing ---------------------------------------------------------------------

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        _Bounder().visit(tree)
        tree.set_environment(self)
        return tree

    # -- value checks ----------------------------------------------------------------

    def _checked(self, value: Any, what: str) -> Any:
        cap = self.limits.max_value_chars
        size = weight(value, cap)
        if size > cap:
            raise too_big(self.limits, size, what)
        return value

    def _finalize(self, value: Any) -> Any:
        if value is None:
            return ""
        cap = self.limits.max_value_chars
        size = weight(value, cap)
        if size > cap:
            raise too_big(self.limits, size, "a printed value")
        budget = _BUDGET.get()
        if budget is not None:
            budget.emit(size)
        return value

    def _cap(self, value: Any) -> Any:
        return self._checked(value, "a literal")

    def _concat(self, operands: tuple[Any, ...]) -> str:
        self._checked(operands, "a '~' concatenation")
        return "".join(str(x) for x in operands)

    # -- globals ---------------------------------------------------------------------

    def _range(self, *args: int) -> range:
        result = range(*args)
        if len(result) > self.limits.max_range:
            raise RenderLimitExceeded(
                f"range() of {len(result):,} items is over the limit of {self.limits.max_range:,}"
            )
        return result

    def _lipsum(self, n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        if n > 100 or max > 1000:
            raise RenderLimitExceeded("lipsum() is limited to n ≤ 100 and max ≤ 1000")
        return str(generate_lorem_ipsum(n=n, html=html, min=min, max=max))

    # -- loops -----------------------------------------------------------------------

    def _iter_filter(self) -> Callable[..., Iterator[Any]]:
        @pass_context
        def bounded(_context: Any, iterable: Iterable[Any], static_chars: int) -> Iterator[Any]:
            budget = _BUDGET.get()
            if budget is None:
                yield from iterable
                return
            for item in iterable:
                budget.step()
                if static_chars:
                    budget.emit(static_chars)
                yield item

        return bounded

    # -- operators and calls -----------------------------------------------------------

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        check_binop(self.limits, operator, left, right)
        result = self.binop_table[operator](left, right)
        return self._checked(result, f"the result of '{operator}'")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _BUDGET.get()
        if budget is not None:
            budget.step()
        check_method(__self.limits, __obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        return __self._checked(result, "the result of a call")

    # -- filters -----------------------------------------------------------------------

    def _guarded_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        check = FILTER_CHECKS.get(name)
        takes_first = hasattr(func, "jinja_pass_arg")
        sandbox = self

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if check is not None:
                offset = 1 if takes_first else 0
                head, body = args[:offset], args[offset:]
                body, kwargs = check(sandbox, sandbox.limits, body, kwargs)
                args = (*head, *body)
            return sandbox._checked(func(*args, **kwargs), f"the result of filter {name}")

        return guarded
