"""Checks on JSON replies: is-json, json-schema and json-path. Registered in
``registry``; pure (schema files arrive parsed in the context).

The whole reply, without surrounding whitespace, must be one JSON value; text around it
or Markdown code fences make it not JSON. A sample the runtime's guardrails blocked is
JSON to the caller (the runtime answers with a JSON error body), so ``is-json`` passes it. ``json-schema`` takes an inline schema or a
file path **relative to the app directory** (``manifests/<app>/``), like the output
guardrail's ``jsonSchema``. ``json-path`` compares the value at ``path`` with ``value``
as JSON (``false`` is not ``0``), or checks that the path exists when ``value`` is null.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from llmops.domain.evals import GradingResult
from llmops.domain.models.evalsuite import Assertion
from llmops.evals.assertions.context import GradeContext, snippet
from llmops.evals.assertions.jsonpath import (
    MISSING,
    JsonPathError,
    json_equal,
    parse_path,
    resolve,
)
from llmops.evals.assertions.registry import error, handler, verdict

_NOT_JSON = object()


@lru_cache(maxsize=256)
def _parse(output: str) -> tuple[Any, str]:
    """``(value, "")`` or ``(_NOT_JSON, why)``. Several assertions share one parse."""
    try:
        return json.loads(output), ""
    except ValueError as exc:
        msg = getattr(exc, "msg", str(exc))
        pos = getattr(exc, "pos", None)
        return _NOT_JSON, f"{msg} at character {pos}" if pos is not None else msg


@handler("is-json")
def is_json(output: str, assertion: Assertion, ctx: GradeContext) -> GradingResult:
    if ctx.blocked:
        # the runtime answered with its own JSON error body, not the model's reply: the
        # contract held (``not is-json`` then fails, as it should)
        return verdict(True, f"blocked by the {ctx.blocked}: the runtime answered with a JSON error")
    value, why = _parse(output)
    if value is _NOT_JSON:
        return verdict(False, f"expected output to be JSON; {why}; got {snippet(output)}")
    return verdict(True, f"output is JSON ({type(value).__name__})")


_VALIDATORS: dict[int, tuple[Mapping[str, Any], Validator]] = {}


def _validator(schema: Mapping[str, Any]) -> Validator:
    """A compiled validator, cached per schema object (kept alive by the cache)."""
    found = _VALIDATORS.get(id(schema))
    if found is not None and found[0] is schema:
        return found[1]
    cls = validator_for(schema)
    cls.check_schema(dict(schema))
    compiled: Validator = cls(dict(schema))
    _VALIDATORS[id(schema)] = (schema, compiled)
    return compiled


def load_schema_file(app_dir: Path, rel: str) -> Mapping[str, Any]:
    """A JSON Schema file relative to ``app_dir``; raises ValueError saying what is wrong.

    Called by the runner before a run (to fill ``GradeContext.schemas``) and as a
    fallback here. The path may not leave the app directory.
    """
    base = app_dir.resolve()
    target = (base / rel).resolve()
    if not target.is_relative_to(base):
        raise ValueError(f"schema file {rel!r} resolves outside the app directory {app_dir}")
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(
            f"schema file {rel!r} does not exist (looked for {app_dir / rel}; "
            "json-schema paths are relative to the app directory)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"schema file {rel!r} cannot be read: {exc}") from None
    if target.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"schema file {rel!r} is not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"schema file {rel!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"schema file {rel!r} must hold a JSON object (a schema)")
    return data


def _schema_for(assertion: Assertion, ctx: GradeContext) -> Mapping[str, Any] | str:
    value = assertion.value
    if isinstance(value, dict):
        return value
    rel = str(value)
    found = ctx.schemas.get(rel)
    if found is not None:
        return found
    if ctx.app_dir is None:
        return f"schema file {rel!r} was not loaded and the app directory is unknown"
    try:
        return load_schema_file(ctx.app_dir, rel)
    except ValueError as exc:
        return str(exc)


@handler("json-schema")
def json_schema(output: str, assertion: Assertion, ctx: GradeContext) -> GradingResult:
    schema = _schema_for(assertion, ctx)
    if isinstance(schema, str):
        return error(schema)
    try:
        validator = _validator(schema)
    except SchemaError as exc:
        return error(f"the JSON Schema itself is invalid: {exc.message}; fix the suite")
    value, why = _parse(output)
    if value is _NOT_JSON:
        return verdict(False, f"expected JSON matching the schema; output is not JSON: {why}")
    problems = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    if not problems:
        return verdict(True, "output matches the JSON Schema")
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return verdict(
        False, f"output does not match the JSON Schema at {first.json_path}: {first.message}{more}"
    )


@handler("json-path")
def json_path(output: str, assertion: Assertion, ctx: GradeContext) -> GradingResult:
    path = assertion.path or "$"
    try:
        steps = parse_path(path)
    except JsonPathError as exc:
        return error(str(exc))
    document, why = _parse(output)
    if document is _NOT_JSON:
        return verdict(False, f"expected JSON with {path}; output is not JSON: {why}")
    found = resolve(document, steps)
    expected = assertion.value
    if found is MISSING:
        return verdict(False, f"expected {path} in the output; it is missing: {snippet(output)}")
    if expected is None:
        return verdict(True, f"{path} exists ({json.dumps(found)[:60]})")
    if json_equal(found, expected):
        return verdict(True, f"{path} is {json.dumps(expected)}")
    return verdict(
        False, f"expected {path} to be {json.dumps(expected)}; got {json.dumps(found)[:80]}"
    )
