"""Turn pydantic validation errors into diagnostics a person can act on.

Called by ``llmops.manifests.loader``. Each error is placed at the line and column of
the offending value (or of its parent mapping when a field is missing), named by
its YAML field path, and phrased as what to change. Values under secret-bearing
fields are never echoed.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel

from llmops.domain.diagnostics import Diagnostic
from llmops.manifests.yamldoc import Path, YamlDoc

SENSITIVE_KEYS = frozenset({"apiKey", "secret", "token", "password"})

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "none_required": "null",
}

_BOUNDS = {
    "less_than_equal": ("≤", "le"),
    "less_than": ("<", "lt"),
    "greater_than_equal": ("≥", "ge"),
    "greater_than": (">", "gt"),
}


def show(value: Any) -> str:
    """A short, YAML-flavoured description of a value for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"{value}"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return repr(text)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def real_path(loc: tuple[int | str, ...], data: Any) -> Path:
    """The part of a pydantic ``loc`` that names keys and indexes present in ``data``.

    Pydantic puts union member tags (``str``, ``function-after[...]``) into ``loc``;
    they are skipped. A trailing key that is absent (a missing field) is kept.
    """
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str):
            path.append(part)
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif node is None and isinstance(part, str) and not path_contains_tag(part):
            path.append(part)
    return tuple(path)


def path_contains_tag(part: str) -> bool:
    return "[" in part or part in {"str", "int", "float", "bool", "list", "dict", "none"}


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def allowed_keys(model: type[BaseModel], path: Path) -> list[str]:
    """The field names (YAML aliases) accepted at ``path`` inside ``model``."""
    annotation: Any = model
    for part in path:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    target = _unwrap_model(annotation)
    if target is None:
        return []
    return [f.alias or name for name, f in target.model_fields.items()]


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _unwrap_model(arg)
            if found:
                return found
    if origin is typing.Annotated:
        return _unwrap_model(typing.get_args(annotation)[0])
    return None


def _step(annotation: Any, part: str | int) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _step(typing.get_args(annotation)[0], part)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _step(arg, part)
            if found is not None:
                return found
        return None
    if isinstance(part, int):
        return typing.get_args(annotation)[0] if origin is list else None
    if origin is dict:
        return typing.get_args(annotation)[1]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if (field.alias or name) == part:
                return field.annotation
    return None


#: Fields people put one level too high, keyed by (kind, parent path, key).
_MISPLACED: dict[tuple[str, tuple[str | int, ...], str], str] = {
    ("Environment", ("spec",), "replicas"): "spec.overrides.<app>.replicas",
    ("Environment", ("spec",), "resources"): "spec.overrides.<app>.resources",
    ("Environment", ("spec",), "model"): "spec.overrides.<app>.model",
    ("Environment", ("spec",), "namespace"): "spec.target.namespace",
    ("LLMApp", ("spec",), "params"): "spec.model.params",
    ("LLMApp", ("spec",), "temperature"): "spec.model.params.temperature",
    ("LLMApp", ("spec",), "inputs"): "spec.prompt.inputs",
    ("LLMApp", ("spec",), "replicas"): "spec.serving.replicas",
    ("Pipeline", ("spec",), "gate"): "spec.stages[].gate",
}


def unknown_field_message(
    key: str, allowed: list[str], model: type[BaseModel] | None = None, parent: Path = ()
) -> str:
    home = _MISPLACED.get((model.__name__ if model else "", tuple(parent), key))
    if home:
        return f"unknown field {key!r} here; it belongs under {home}"
    camel = to_camel(key) if "_" in key else None
    if camel and camel in allowed:
        return f"unknown field {key!r}; did you mean {camel!r}? (fields are camelCase)"
    from difflib import get_close_matches
    close = get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown field {key!r}; did you mean {close[0]!r}?"
    if allowed:
        return f"unknown field {key!r}; allowed here: {', '.join(sorted(allowed))}"
    return f"unknown field {key!r}; remove it"


def message_for(error: Any, path: Path, model: type[BaseModel]) -> str:
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    secret = any(isinstance(p, str) and p in SENSITIVE_KEYS for p in path)
    got = "" if secret else f" (got {show(error.get('input'))})"
    if kind == "missing":
        return f"required field {path[-1]!r} is missing; add it" if path else "required field missing"
    if kind == "extra_forbidden":
        return unknown_field_message(
            str(path[-1]), allowed_keys(model, path[:-1]), model, path[:-1]
        )
    if kind in _TYPE_NAMES:
        hint = ""
        if kind == "string_type" and isinstance(error.get("input"), bool | int | float):
            hint = "; quote it to keep it as text"
        return f"must be {_TYPE_NAMES[kind]}{got}{hint}"
    if kind in _BOUNDS:
        symbol, key = _BOUNDS[kind]
        return f"must be {symbol} {_number(ctx.get(key))}{got}"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        options = [o.strip().strip("'") for o in str(expected).replace(" or ", ", ").split(",")]
        from difflib import get_close_matches
        close = get_close_matches(str(error.get("input")), options, n=1)
        hint = f"; did you mean {close[0]!r}?" if close and not secret else ""
        return f"must be one of {expected}{got}{hint}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s){got}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} item(s)"
    if kind == "string_too_short":
        return f"must be at least {ctx.get('min_length')} character(s){got}"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} character(s)"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}{got}"
    message = str(error.get("msg", kind))
    return message.removeprefix("Value error, ")


def diagnostics_from(
    exc: ValidationError, doc: YamlDoc, file: str, model: type[BaseModel]
) -> list[Diagnostic]:
    """One diagnostic per pydantic error, positioned in ``doc``."""
    found: list[Diagnostic] = []
    for error in exc.errors(include_url=False):
        # A model-level check may name the offending field below its loc in ctx["at"].
        at = (error.get("ctx") or {}).get("at") or ()
        path = real_path((*error["loc"], *at), doc.data)
        kind = error["type"]
        if kind == "missing":
            mark = doc.mark_for(path[:-1])
        else:
            mark = doc.mark_for(path, key=kind == "extra_forbidden")
        found.append(
            Diagnostic(file, mark.line, mark.column, dotted(path), message_for(error, path, model))
        )
    return sorted(set(found))
