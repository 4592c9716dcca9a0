"""Compile an app's prompt templates once and render them into chat messages; called by
``llmops.runtime.loaded`` (compile at load, render per request).

Templates render in :class:`~llmops.runtime.sandbox.BoundedSandbox` with
``StrictUndefined`` and autoescape off. They are read only from the app's directory, by
relative names without ``..``, never through a symlink that leads out, and only while the
app loads: every template the prompt includes, imports or extends is compiled then, so a
request never reads a file and a name computed at render time (say, from an input) is
refused. Inputs are passed to templates as data and are never compiled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from jinja2 import (
    BaseLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    meta,
)
from jinja2.exceptions import SecurityError
from jinja2.runtime import new_context

from llmops.domain.chat import ChatMessage
from llmops.domain.diagnostics import Diagnostic
from llmops.domain.errors import ManifestInvalid
from llmops.domain.models.base import rel_path_problem
from llmops.runtime.errors import RenderFailed
from llmops.runtime.sandbox import BoundedSandbox, RenderLimitExceeded, RenderLimits, render_budget

#: Largest template file read, as in manifest validation.
MAX_TEMPLATE_BYTES = 256 * 1024
_MAX_INCLUDE_DEPTH = 8


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


@dataclass(frozen=True, slots=True)
class CompiledPrompt:
    """The app's system and user templates, compiled, with every file they use."""

    system: Template | None
    user: Template
    files: tuple[str, ...]
    limits: RenderLimits
    globals: dict[str, Any]

    def render(self, inputs: Mapping[str, Any], builtins: Mapping[str, Any]) -> RenderedPrompt:
        """Render both templates with ``inputs`` (already bound) and the built-ins.

        Raises :class:`RenderFailed` naming the template file and line.
        """
        context = {**self.globals, **inputs, **builtins, "inputs": dict(inputs)}
        messages: list[ChatMessage] = []
        with render_budget(self.limits):
            if self.system is not None:
                messages.append(ChatMessage("system", self._render(self.system, context)))
            messages.append(ChatMessage("user", self._render(self.user, context)))
        return RenderedPrompt(tuple(messages), dict(inputs))

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
        if depth < _MAX_INCLUDE_DEPTH:
            source, _, _ = loader.get_source(env, name)
            for ref in meta.find_referenced_templates(env.parse(source)):
                if ref is not None:
                    load(ref, depth + 1, filename)
        return template

    compiled_system = load(system, 0, None) if system is not None else None
    compiled_user = load(user, 0, None)
    loader.seal()
    return CompiledPrompt(
        compiled_system, compiled_user, tuple(files), env.limits, dict(compiled_user.globals)
    )


def _invalid(file: str, line: int, message: str) -> ManifestInvalid:
    diagnostic = Diagnostic(file, line, 1, "", message)
    return ManifestInvalid(diagnostic.render(), [diagnostic])
