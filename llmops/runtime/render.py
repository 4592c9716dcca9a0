"""Compile an app's prompt templates once and render them into chat messages; called by
``llmops.runtime.loaded`` (compile at load, render per request).

Templates render in :class:`~llmops.runtime.sandbox.BoundedSandbox` with
``StrictUndefined`` and autoescape off. They are read only from the app's directory, by
relative names without ``..``, never through a symlink that leads out, and only while the
app loads: every template the prompt includes, imports or extends is compiled then, so a
request never reads a file and a name computed at render time (say, from an input) is
refused. Inputs are passed to templates as data and are never compiled.

Two shortcuts keep a render to a few microseconds; both give exactly what Jinja gives:

- a template that is only text and ``{{ name }}`` placeholders (most user prompts) is
  rendered by joining strings (:class:`PlainTemplate`), with the sandbox's checks on each
  value; anything unusual (a missing name, a value over a limit) is handed to Jinja, which
  raises the proper error;
- the rendered system message is kept per release, keyed by the values of the names its
  templates read (:class:`RenderCache`): it usually depends on a built-in or two and on
  few inputs. Only templates that cannot render differently for the same values (no
  ``random`` filter, no ``lipsum``) and only scalar values (text, numbers, booleans,
  null) are cached; a hit charges the render budget what the first render spent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from jinja2 import (
    BaseLoader,
    Environment,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
)
from jinja2.exceptions import SecurityError
from jinja2.runtime import new_context

from llmops.domain.chat import ChatMessage
from llmops.domain.diagnostics import Diagnostic
from llmops.domain.errors import ManifestInvalid
from llmops.domain.models.base import rel_path_problem
from llmops.runtime.errors import RenderFailed
from llmops.runtime.limits import weight
from llmops.runtime.sandbox import (
    BoundedSandbox,
    RenderBudget,
    RenderLimitExceeded,
    RenderLimits,
    render_budget,
)

#: Largest template file read, as in manifest validation.
MAX_TEMPLATE_BYTES = 256 * 1024
_MAX_INCLUDE_DEPTH = 8
#: How many rendered system messages a prompt keeps, and the longest one kept.
CACHE_ENTRIES = 256
CACHE_TEXT_CHARS = 16 * 1024
_MISSING = object()
_GLOBAL = object()
#: Filters and globals whose result is not a function of their arguments.
_RANDOM_FILTERS = frozenset({"random"})
_RANDOM_GLOBALS = frozenset({"lipsum"})
#: Names Jinja gives a meaning of its own rather than looking them up in the context.
_JINJA_NAMES = frozenset({"self", "loop", "varargs", "kwargs", "caller", "super"})


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """The messages that would be sent to the model, and the inputs they were rendered with."""

    messages: tuple[ChatMessage, ...]
    inputs: dict[str, Any]


class AppDirLoader(BaseLoader):
    """Loads templates from one app directory, and only until :meth:`seal` is called."""

    def __init__(self, app_dir: Path, display_dir: str) -> None:
        self.root = app_dir.resolve()
        self.display_dir = display_dir.rstrip("/")
        self.sealed = False
        self.references: dict[str, tuple[str | None, ...]] = {}

    def display(self, name: str) -> str:
        return f"{self.display_dir}/{name}" if self.display_dir else name

    def seal(self) -> None:
        """From now on every template must already be compiled (and cached)."""
        self.sealed = True

    def get_source(
        self, environment: Any, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        if self.sealed:
            raise TemplateNotFound(
                template,
                f"template {template!r} was not loaded with the app: includes must name "
                "their template literally",
            )
        problem = rel_path_problem(template)
        if problem:
            raise TemplateNotFound(template, f"template name {template!r} {problem}")
        path = self.root / template
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise TemplateNotFound(
                template, f"template {self.display(template)} does not exist"
            ) from None
        if not resolved.is_relative_to(self.root):
            raise TemplateNotFound(
                template, f"template {self.display(template)} leads outside the app directory"
            )
        try:
            if resolved.stat().st_size > MAX_TEMPLATE_BYTES:
                raise TemplateNotFound(
                    template,
                    f"template {self.display(template)} is over {MAX_TEMPLATE_BYTES:,} bytes",
                )
            source = resolved.read_bytes().decode("utf-8").removeprefix("\ufeff")
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateNotFound(
                template, f"template {self.display(template)} cannot be read: {exc}"
            ) from None
        return source, self.display(template), lambda: True


class PlainTemplate:
    """A template that is only text and ``{{ name }}`` placeholders, rendered as Jinja's
    generated code renders it (each value through the sandbox's ``finalize``, then
    ``str``; the output limit checked after each piece), without its machinery."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[tuple[bool, str], ...]) -> None:
        self.parts = parts  # (is a name, text or name)

    @classmethod
    def of(cls, tree: nodes.Template) -> PlainTemplate | None:
        """The plain form of a parsed template, or None when it has anything else."""
        parts: list[tuple[bool, str]] = []
        for statement in tree.body:
            if not isinstance(statement, nodes.Output):
                return None
            for node in statement.nodes:
                if type(node) is nodes.TemplateData:
                    parts.append((False, node.data))
                elif (
                    type(node) is nodes.Name
                    and node.ctx == "load"
                    and node.name not in _JINJA_NAMES
                ):
                    parts.append((True, node.name))
                else:
                    return None
        return cls(tuple(parts))

    def render(self, env: Environment, context: Mapping[str, Any], limit: int) -> str | None:
        """The text, or None when Jinja must render it (it will raise a proper error)."""
        finalize = env.finalize
        assert finalize is not None
        return self._join(context, limit, lambda value: str(finalize(value)))

    def render_counted(
        self, context: Mapping[str, Any], limits: RenderLimits, emitted: int
    ) -> tuple[str, int] | None:
        """What :meth:`render` gives inside a render budget that has ``emitted``
        characters spent, without one: the text and the budget's count after it, or None
        wherever the sandbox's ``finalize`` or the output limit would refuse a value (the
        caller then renders in a budget, and Jinja raises the proper error).

        ``finalize``, inlined: None prints as "" and is not counted; any other value is
        refused above ``max_value_chars`` by its weight, which is what it counts."""
        cap = limits.max_value_chars
        most = limits.max_emitted_chars
        spent = [emitted]

        def counted(value: Any) -> str | None:
            if value is None:
                return ""
            size = len(value) if type(value) is str else weight(value, cap)
            spent[0] += size
            return None if size > cap or spent[0] > most else str(value)

        text = self._join(context, limits.max_output_chars, counted)
        return None if text is None else (text, spent[0])

    def _join(
        self, context: Mapping[str, Any], limit: int, shown: Callable[[Any], str | None]
    ) -> str | None:
        """The parts joined, each name's value as ``shown`` gives it; None when a name is
        missing, ``shown`` refuses a value (None) or the text grows over ``limit``."""
        chunks: list[str] = []
        size = 0
        for is_name, text in self.parts:
            if is_name:
                value = context.get(text, _MISSING)
                if value is _MISSING:
                    return None
                piece = shown(value)
                if piece is None:
                    return None
                text = piece
            size += len(text)
            if size > limit:
                return None
            chunks.append(text)
        return "".join(chunks)


class RenderCache:
    """Rendered texts of one template by the values of the names it (and the templates it
    uses) read: ``names``, sorted; ``constants`` are the environment's globals, which
    count as constants while an input does not shadow them."""

    __slots__ = ("constants", "entries", "names")

    def __init__(self, names: tuple[str, ...], constants: Mapping[str, Any]) -> None:
        self.names = names
        self.constants = constants
        self.entries: dict[tuple[Any, ...], tuple[ChatMessage, int, int]] = {}

    def key(self, context: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The cache key for ``context``, or None when a value is not a plain scalar."""
        key: list[Any] = []
        for name in self.names:
            value = context.get(name, _MISSING)
            if value is _MISSING:
                key.append(_MISSING)
            elif value is self.constants.get(name, _MISSING):
                key.append(_GLOBAL)
            elif name == "inputs" and type(value) is dict:
                items = []
                for item_name, item in value.items():
                    part = _scalar(item)
                    if part is None:
                        return None
                    items.append((item_name, part))
                key.append(tuple(items))
            else:
                part = _scalar(value)
                if part is None:
                    return None
                key.append(part)
        return tuple(key)

    def store(self, key: tuple[Any, ...], text: str, steps: int, emitted: int) -> None:
        if len(text) > CACHE_TEXT_CHARS:
            return
        if len(self.entries) >= CACHE_ENTRIES:
            self.entries.clear()  # many distinct values: start over (simple, thread-safe)
        self.entries[key] = (ChatMessage("system", text), steps, emitted)


def _scalar(value: Any) -> tuple[type, Any] | None:
    """``value`` as part of a cache key: the type is kept, so ``1``, ``1.0`` and ``True``
    (equal in Python, printed differently) never share an entry."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return (kind, value)
    if kind is float:
        return (kind, repr(value))  # -0.0 == 0.0, yet they print differently
    return None


@dataclass(frozen=True, slots=True)
class CompiledPrompt:
    """The app's system and user templates, compiled, with every file they use."""

    system: Template | None
    user: Template
    files: tuple[str, ...]
    limits: RenderLimits
    globals: dict[str, Any]
    system_plain: PlainTemplate | None = None
    user_plain: PlainTemplate | None = None
    system_cache: RenderCache | None = None

    def render(self, inputs: Mapping[str, Any], builtins: Mapping[str, Any]) -> RenderedPrompt:
        """Render both templates with ``inputs`` (already bound) and the built-ins.

        Raises :class:`RenderFailed` naming the template file and line.
        """
        given = dict(inputs)  # templates cannot change it: the sandbox is immutable
        context = {**self.globals, **inputs, **builtins, "inputs": given}
        try:
            fast = self._fast(context)
        except Exception:  # a value str() refuses, say: rendered in a budget, which says so
            fast = None
        if fast is not None:
            return RenderedPrompt(fast, given)
        with render_budget(self.limits) as budget:
            system = self._system(context, budget) if self.system is not None else None
            user = self._text(self.user, self.user_plain, context, budget)
        if system is None:
            return RenderedPrompt((ChatMessage("user", user),), given)
        return RenderedPrompt((system, ChatMessage("user", user)), given)

    def _fast(self, context: dict[str, Any]) -> tuple[ChatMessage, ...] | None:
        """The messages when no template code runs (the system message plain or cached,
        the user one plain), so no render budget is needed: the characters a budget
        would count are counted here; None (render in a budget) for anything else, or
        for a value a check would refuse."""
        user = self.user_plain
        if user is None:
            return None
        emitted = 0
        system: ChatMessage | None = None
        if self.system is not None:
            cache = self.system_cache
            if cache is not None:
                key = cache.key(context)
                hit = cache.entries.get(key) if key is not None else None
                if hit is None:
                    return None
                system, _, emitted = hit  # its steps are within the budget: none follow
            elif self.system_plain is not None:
                counted = self.system_plain.render_counted(context, self.limits, 0)
                if counted is None:
                    return None
                system = ChatMessage("system", counted[0])
                emitted = counted[1]
            else:
                return None
        counted = user.render_counted(context, self.limits, emitted)
        if counted is None:
            return None
        if system is None:
            return (ChatMessage("user", counted[0]),)
        return (system, ChatMessage("user", counted[0]))

    def _system(self, context: dict[str, Any], budget: RenderBudget) -> ChatMessage:
        assert self.system is not None
        cache = self.system_cache
        key = cache.key(context) if cache is not None else None
        if key is not None:
            assert cache is not None
            hit = cache.entries.get(key)
            if hit is not None:
                message, steps, emitted = hit
                budget.steps += steps
                budget.emitted += emitted
                return message
        steps, emitted = budget.steps, budget.emitted
        text = self._text(self.system, self.system_plain, context, budget)
        if key is not None:
            assert cache is not None
            cache.store(key, text, budget.steps - steps, budget.emitted - emitted)
        return ChatMessage("system", text)

    def _text(
        self,
        template: Template,
        plain: PlainTemplate | None,
        context: dict[str, Any],
        budget: RenderBudget,
    ) -> str:
        if plain is not None:
            emitted = budget.emitted
            try:
                text = plain.render(template.environment, context, self.limits.max_output_chars)
            except Exception:  # Jinja raises it again, with the template's file and line
                text = None
            if text is not None:
                return text
            budget.emitted = emitted
        return self._render(template, context)

    def _render(self, template: Template, context: dict[str, Any]) -> str:
        limit = self.limits.max_output_chars
        parts: list[str] = []
        size = 0
        try:
            for chunk in _generate(template, context):
                size += len(chunk)
                if size > limit:
                    raise RenderLimitExceeded(
                        f"the rendered prompt is over the limit of {limit:,} characters"
                    )
                parts.append(chunk)
        except RecursionError as exc:
            raise self._failure(template, exc, "templates or macros recurse too deeply") from None
        except SecurityError as exc:
            reason = (
                str(exc)
                if isinstance(exc, RenderLimitExceeded)
                else f"blocked by the sandbox: {exc}"
            )
            raise self._failure(template, exc, reason) from None
        except UndefinedError as exc:
            raise self._failure(
                template, exc, f"{exc} (a template uses a name no input or built-in defines)"
            ) from None
        except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
            raise self._failure(template, exc, f"{type(exc).__name__}: {exc}") from None
        return "".join(parts)

    def _failure(self, template: Template, exc: BaseException, reason: str) -> RenderFailed:
        file, line = _template_frame(exc.__traceback__, set(self.files))
        return RenderFailed(reason, file or template.filename, line)


def _generate(template: Template, context: dict[str, Any]) -> Iterator[str]:
    """``template.generate(context)`` without copying the globals on every call: the
    context already holds them (a shared context; Jinja's own fast path for includes)."""
    env = template.environment
    ctx = new_context(env, template.name, template.blocks, context, shared=True)
    try:
        yield from template.root_render_func(ctx)
    except Exception:
        env.handle_exception()  # re-raises with the template's file and line in the traceback


def _template_frame(tb: TracebackType | None, files: set[str]) -> tuple[str | None, int | None]:
    """The innermost traceback frame that belongs to one of our templates."""
    found: tuple[str | None, int | None] = (None, None)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename in files:
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def compile_prompt(
    app_dir: Path,
    display_dir: str,
    system: str | None,
    user: str,
    limits: RenderLimits | None = None,
) -> CompiledPrompt:
    """Compile the templates (and what they include); ``ManifestInvalid`` names file:line."""
    loader = AppDirLoader(app_dir, display_dir)
    env = BoundedSandbox(
        limits=limits,
        loader=loader,
        undefined=StrictUndefined,
        autoescape=False,
        auto_reload=False,
        cache_size=-1,
    )
    files: list[str] = []
    trees: dict[str, nodes.Template] = {}

    def load(name: str, depth: int, referrer: str | None) -> Template:
        try:
            template = env.get_template(name)
        except TemplateSyntaxError as exc:
            file = exc.filename or loader.display(name)
            raise _invalid(file, exc.lineno or 1, f"template syntax error: {exc.message}") from None
        except TemplateNotFound as exc:
            raise _invalid(referrer or loader.display(name), 1, str(exc.message or exc)) from None
        filename = template.filename or loader.display(name)
        if filename in files:
            return template
        files.append(filename)
        source, _, _ = loader.get_source(env, name)
        tree = trees[filename] = env.parse(source)
        if depth < _MAX_INCLUDE_DEPTH:
            for ref in meta.find_referenced_templates(tree):
                if ref is not None:
                    load(ref, depth + 1, filename)
        return template

    compiled_system = load(system, 0, None) if system is not None else None
    before_user = len(files)
    compiled_user = load(user, 0, None)
    # the user template's file: the first one it loaded, or (already loaded by the
    # system template) the one with its name
    user_file = (
        files[before_user]
        if len(files) > before_user
        else compiled_user.filename or loader.display(user)
    )
    loader.seal()
    system_plain = system_cache = None
    if system is not None:
        system_plain = PlainTemplate.of(trees[files[0]])
        if system_plain is None:
            system_cache = _cache_for([trees[f] for f in files[:before_user]], env.globals)
    user_plain = PlainTemplate.of(trees[user_file])
    return CompiledPrompt(
        compiled_system,
        compiled_user,
        tuple(files),
        env.limits,
        dict(compiled_user.globals),
        system_plain,
        user_plain,
        system_cache,
    )


def _cache_for(trees: list[nodes.Template], constants: Mapping[str, Any]) -> RenderCache | None:
    """A cache for a template that uses ``trees`` (itself and every file it may include),
    or None when one of them can render differently for the same values."""
    names: set[str] = set()
    for tree in trees:
        for node in tree.find_all((nodes.Filter, nodes.Name)):
            if isinstance(node, nodes.Filter) and node.name in _RANDOM_FILTERS:
                return None
            if isinstance(node, nodes.Name) and node.name in _RANDOM_GLOBALS:
                return None
        names |= meta.find_undeclared_variables(tree)
    return RenderCache(tuple(sorted(names)), dict(constants))


def _invalid(file: str, line: int, message: str) -> ManifestInvalid:
    diagnostic = Diagnostic(file, line, 1, "", message)
    return ManifestInvalid(diagnostic.render(), [diagnostic])
