"""Checks of one app against its own files: directory name, prompt templates and their
variables, the output JSON Schema, and its eval suites (cases, inputs, datasets).

Called by ``llmops.manifests.repository`` once per app manifest.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from pathlib import Path
from typing import Any

from llmops.domain.models import EvalSuite, LLMApp
from llmops.domain.models.app import TEMPLATE_BUILTINS, input_value_problem
from llmops.domain.models.base import rel_path_problem
from llmops.domain.repo import AppSource, SuiteSource
from llmops.manifests.loader import MAX_MANIFEST_BYTES, MAX_TEMPLATE_BYTES, Context, Parsed
from llmops.manifests.metaschema import surely_valid
from llmops.manifests.templates import TemplateInfo, TemplateProblem, analyse
from llmops.manifests.yamldoc import Mark

DATASET_SUFFIXES = (".jsonl", ".csv", ".yaml", ".yml", ".json")
_MAX_INCLUDE_DEPTH = 8


def check_app(
    ctx: Context,
    parsed: Parsed[LLMApp],
    app_dir: Path,
    suite_index: dict[str, set[str]],
    unloaded_suites: list[str] | None = None,
    raw_suites: list[tuple[Any, str]] | None = None,
) -> AppSource | None:
    """Validate everything one app references; the AppSource when it is all sound.

    Every suite that loads is added to ``suite_index`` (name -> case ids), even when
    the app has other errors, so pipelines are not blamed for the app's mistakes; the
    files of listed suites that do not load are appended to ``unloaded_suites``; each
    accepted suite's YAML data and file go to ``raw_suites`` when given.
    """
    app = parsed.model
    assert app is not None and parsed.doc is not None
    before = len([d for d in ctx.diagnostics if d.severity == "error"])
    if app.metadata.name != app_dir.name:
        ctx.report(
            parsed.file,
            parsed.doc.mark_for(("metadata", "name")),
            "metadata.name",
            f"name {app.metadata.name!r} must match its directory {app_dir.name!r}; "
            "rename one of them",
        )
    used = _check_templates(ctx, parsed, app_dir)
    declared = app.spec.prompt.inputs
    # Unknown when a template could not be analysed, or when one reads them all via `inputs`.
    unused = set() if used is None or "inputs" in used else set(declared) - used
    for name in sorted(unused):
        ctx.report(
            parsed.file,
            parsed.doc.mark_for(("spec", "prompt", "inputs", name), key=True),
            ("spec", "prompt", "inputs", name),
            f"input {name!r} is declared but no template uses it",
            "warning",
        )
    _check_json_schema(ctx, parsed, app_dir)
    unloaded = unloaded_suites if unloaded_suites is not None else []
    suites = _check_suites(ctx, parsed, app_dir, unloaded, raw_suites)
    for source in suites:
        suite_index.setdefault(source.name, set()).update(c.id for c in source.suite.spec.cases)
    after = len([d for d in ctx.diagnostics if d.severity == "error"])
    if after != before:
        return None
    return AppSource(
        app=app,
        dir=ctx.display(app_dir),
        file=parsed.file,
        suites=tuple(suites),
    )


def _check_templates(ctx: Context, parsed: Parsed[LLMApp], app_dir: Path) -> set[str] | None:
    """Check both templates (and what they include); return the names they use, or None
    when some template could not be analysed (so which inputs are used is unknown)."""
    app = parsed.model
    assert app is not None
    used: set[str] = set()
    complete = True
    for field_name in ("system", "user"):
        rel = getattr(app.spec.prompt, field_name)
        if rel is None:
            continue
        path = ("spec", "prompt", field_name)
        target = ctx.referenced_file(app_dir, rel, parsed, path, "template")
        if target is None or not _check_template(ctx, parsed, app_dir, target, used, 0, set()):
            complete = False
    return used if complete else None


def _check_template(
    ctx: Context,
    parsed: Parsed[LLMApp],
    app_dir: Path,
    target: Path,
    used: set[str],
    depth: int,
    seen: set[Path],
) -> bool:
    """Check one template and its includes; False when any of them could not be analysed."""
    app = parsed.model
    assert app is not None
    if target in seen or depth > _MAX_INCLUDE_DEPTH:
        return True
    seen.add(target)
    file = ctx.display(target)
    text = ctx.read_text(target, MAX_TEMPLATE_BYTES, "template")
    if text is None:
        return False
    info = analyse(text)
    if isinstance(info, TemplateProblem):
        ctx.report(file, Mark(info.line, 1), "", info.message)
        return False
    complete = True
    _check_variables(ctx, parsed, file, info)
    used.update(info.variables)
    lines = info.reference_lines or (1,) * len(info.references)
    for ref, line in zip(info.references, lines, strict=True):
        if ref is None:
            ctx.report(
                file, Mark(line, 1), "", "includes a template by a computed name; name it literally"
            )
            complete = False
            continue
        problem = rel_path_problem(ref)
        if problem:
            ctx.report(file, Mark(line, 1), "", f"include {ref!r}: {problem}")
            complete = False
            continue
        included = app_dir / ref
        if not ctx.inside(included) or not included.is_file():
            ctx.report(
                file,
                Mark(line, 1),
                "",
                f"includes {ref!r}, which does not exist inside the app directory {ctx.display(app_dir)}",
            )
            complete = False
            continue
        if not _check_template(ctx, parsed, app_dir, included, used, depth + 1, seen):
            complete = False
    return complete


def _check_variables(ctx: Context, parsed: Parsed[LLMApp], file: str, info: TemplateInfo) -> None:
    app = parsed.model
    assert app is not None
    declared = set(app.spec.prompt.inputs)
    for name, line in sorted(info.variables.items()):
        if name in declared or name in TEMPLATE_BUILTINS:
            continue
        from difflib import get_close_matches
        close = get_close_matches(name, sorted(declared | set(TEMPLATE_BUILTINS)), n=1)
        hint = f"did you mean {close[0]!r}? Otherwise " if close else ""
        ctx.report(
            file,
            Mark(line, 1),
            "",
            f"uses undeclared variable {name!r}; {hint}declare it under spec.prompt.inputs "
            f"in {parsed.file} (built-ins: {', '.join(TEMPLATE_BUILTINS)})",
        )


def _check_json_schema(ctx: Context, parsed: Parsed[LLMApp], app_dir: Path) -> None:
    app = parsed.model
    assert app is not None and parsed.doc is not None
    value = app.spec.guardrails.output.json_schema
    path = ("spec", "guardrails", "output", "jsonSchema")
    schema: Any = value
    file = parsed.file
    if isinstance(value, str):
        target = ctx.referenced_file(app_dir, value, parsed, path, "JSON Schema")
        if target is None:
            return
        text = ctx.read_text(target, MAX_MANIFEST_BYTES, "JSON Schema")
        if text is None:
            return
        try:
            schema = json.loads(text)
        except json.JSONDecodeError as exc:
            ctx.report(ctx.display(target), Mark(exc.lineno, exc.colno), "", f"not valid JSON: {exc.msg}")
            return
        file = ctx.display(target)
    if schema is None:
        return
    if file != parsed.file:
        problem = schema_problem(schema)
        if problem:
            ctx.report(file, Mark(1, 1), "", problem)
        return
    found = _schema_error(schema)
    if found:
        where, message = found
        ctx.report(file, parsed.doc.mark_for((*path, *where)), (*path, *where), message)


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a usable JSON Schema, or None."""
    found = _schema_error(schema)
    if found is None:
        return None
    where, message = found
    if not where:
        return message
    pointer = "/".join(str(p) for p in where)
    return message.replace("not a valid JSON Schema", f"not a valid JSON Schema at {pointer}", 1)


def _schema_error(schema: Any) -> tuple[tuple[str | int, ...], str] | None:
    """Where in ``schema`` (a path) and why it is not a usable JSON Schema, or None."""
    if not isinstance(schema, dict):
        return (), "a JSON Schema must be an object"
    if surely_valid(schema):
        return None
    dialect = schema.get("$schema")
    if dialect is not None and not isinstance(dialect, str):
        return ("$schema",), (
            "not a valid JSON Schema: $schema must be the URI of a dialect, e.g. "
            f"https://json-schema.org/draft/2020-12/schema (got {type(dialect).__name__})"
        )
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return tuple(exc.absolute_path), f"not a valid JSON Schema: {exc.message}"
    except (RecursionError, TypeError, ValueError, LookupError) as exc:
        # a schema the checker itself cannot walk (nested too deep, odd types)
        return (), f"not a usable JSON Schema: {type(exc).__name__}: {exc}"[:300]
    return None


def _check_suites(
    ctx: Context,
    parsed: Parsed[LLMApp],
    app_dir: Path,
    unloaded: list[str],
    raw_suites: list[tuple[Any, str]] | None = None,
) -> list[SuiteSource]:
    app = parsed.model
    assert app is not None
    suites: list[SuiteSource] = []
    names: dict[str, str] = {}
    for index, rel in enumerate(app.spec.evals):
        path = ("spec", "evals", index)
        target = ctx.referenced_file(app_dir, rel, parsed, path, "eval suite")
        if target is None:
            unloaded.append(ctx.display(app_dir / rel))
            continue
        loaded: Parsed[EvalSuite] = ctx.load(target, "EvalSuite")
        suite = loaded.model
        if suite is None:
            unloaded.append(loaded.file)
            continue
        name = suite.metadata.name
        if name in names:
            assert loaded.doc is not None
            ctx.report(
                loaded.file,
                loaded.doc.mark_for(("metadata", "name")),
                "metadata.name",
                f"suite name {name!r} is already used by {names[name]}; suite names are unique per app",
            )
            continue
        names[name] = loaded.file
        _check_cases(ctx, parsed, loaded)
        _check_dataset(ctx, loaded, target.parent)
        suites.append(SuiteSource(suite, loaded.file))
        if raw_suites is not None and loaded.doc is not None:
            raw_suites.append((loaded.doc.data, loaded.file))
    listed = {os.path.normpath(app_dir / rel) for rel in app.spec.evals}
    evals_dir = app_dir / "evals"
    if evals_dir.is_dir():
        for stray in _glob_yaml(evals_dir):
            if os.path.normpath(stray) not in listed:
                ctx.report(
                    ctx.display(stray),
                    None,
                    "",
                    f"not listed in spec.evals of {parsed.file}; it will never run",
                    "warning",
                )
    return suites


#: What ``Path.glob("*.y*ml")`` matches (dot files included, case-sensitive on POSIX).
_YAML_NAME = re.compile(fnmatch.translate("*.y*ml"))


def _glob_yaml(directory: Path) -> list[Path]:
    """``sorted(directory.glob("*.y*ml"))`` without pathlib's selector machinery."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [directory / name for name in sorted(names) if _YAML_NAME.match(name)]


def _check_cases(ctx: Context, parsed: Parsed[LLMApp], loaded: Parsed[EvalSuite]) -> None:
    app, suite = parsed.model, loaded.model
    assert app is not None and suite is not None and loaded.doc is not None
    declared = app.spec.prompt.inputs
    defaults = suite.spec.defaults.inputs
    for index, case in enumerate(suite.spec.cases):
        merged = {**defaults, **case.inputs}
        base = ("spec", "cases", index)
        for name, value in case.inputs.items():
            where = (*base, "inputs", name)
            if name not in declared:
                from difflib import get_close_matches
                close = get_close_matches(name, list(declared), n=1)
                hint = (
                    f"; did you mean {close[0]!r}?"
                    if close
                    else f"; declare it under spec.prompt.inputs in {parsed.file} or remove it"
                )
                ctx.report(
                    loaded.file,
                    loaded.doc.mark_for(where, key=True),
                    where,
                    f"input {name!r} is not declared by app {app.metadata.name!r}{hint}",
                )
                continue
            problem = input_value_problem(declared[name], value)
            if problem:
                ctx.report(loaded.file, loaded.doc.mark_for(where), where, problem)
        for name, spec in declared.items():
            if spec.is_required and name not in merged:
                ctx.report(
                    loaded.file,
                    loaded.doc.mark_for((*base, "inputs")),
                    (*base, "inputs"),
                    f"case {case.id!r} misses required input {name!r}; add it to the case's "
                    "inputs or to spec.defaults.inputs",
                )


def _check_dataset(ctx: Context, loaded: Parsed[EvalSuite], suite_dir: Path) -> None:
    suite = loaded.model
    assert suite is not None
    rel = suite.spec.dataset
    if rel is None:
        return
    path = ("spec", "dataset")
    if not rel.endswith(DATASET_SUFFIXES):
        assert loaded.doc is not None
        ctx.report(
            loaded.file,
            loaded.doc.mark_for(path),
            path,
            f"dataset {rel!r} must be one of: {', '.join(DATASET_SUFFIXES)}",
        )
        return
    ctx.referenced_file(suite_dir, rel, loaded, path, "dataset")
