"""A lean check that a JSON Schema is surely valid against the draft 2020-12 metaschema.

Called by ``llmops.manifests.appcheck`` before it reaches for ``jsonschema`` (~70 ms to
import, more to build the metaschema validator). It answers only "surely valid" or
"not sure": anything it does not fully understand, and every invalid schema, goes to
``jsonschema``'s ``check_schema``, which words the error. So it never changes a result.
"""

from __future__ import annotations

import re
from typing import Any

DIALECT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

_SIMPLE_TYPES = frozenset({"array", "boolean", "integer", "null", "number", "object", "string"})
#: Keywords whose value is one subschema.
_SCHEMA = frozenset(
    {
        "items",
        "contains",
        "additionalProperties",
        "propertyNames",
        "if",
        "then",
        "else",
        "not",
        "unevaluatedItems",
        "unevaluatedProperties",
        "contentSchema",
    }
)
#: Keywords whose value maps names to subschemas.
_SCHEMA_MAP = frozenset({"properties", "$defs", "definitions", "dependentSchemas"})
#: Keywords whose value is a non-empty list of subschemas.
_SCHEMA_LIST = frozenset({"prefixItems", "allOf", "anyOf", "oneOf"})
_NUMBER = frozenset({"maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"})
_COUNT = frozenset(
    {
        "maxLength",
        "minLength",
        "maxItems",
        "minItems",
        "maxContains",
        "minContains",
        "maxProperties",
        "minProperties",
    }
)
_BOOLEAN = frozenset({"uniqueItems", "deprecated", "readOnly", "writeOnly"})
_STRING = frozenset(
    {"title", "description", "$comment", "format", "contentEncoding", "contentMediaType"}
)
_ANY = frozenset({"const", "default"})
_LIST = frozenset({"enum", "examples"})
#: Keywords of the metaschema this check leaves to jsonschema (URIs, anchors, vocabularies).
_DEFERRED = frozenset(
    {
        "$id",
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "$vocabulary",
        "$recursiveAnchor",
        "$recursiveRef",
        "dependencies",
    }
)
#: ``$ref`` values that are plainly URI references into the same document.
_LOCAL_REF = re.compile(r"#(?:/[A-Za-z0-9_.~$-]+)*\Z")
_MAX_DEPTH = 64


def surely_valid(schema: Any) -> bool:
    """True when ``schema`` (a dict) is certainly a valid draft 2020-12 JSON Schema, as
    ``jsonschema``'s ``check_schema`` would find it; False when unsure or invalid."""
    if not isinstance(schema, dict):
        return False
    if "$schema" in schema and schema["$schema"] != DIALECT_2020_12:
        return False
    return _subschema(schema, 0)


def _subschema(node: Any, depth: int) -> bool:
    if isinstance(node, bool):
        return True
    if not isinstance(node, dict) or depth > _MAX_DEPTH:
        return False
    return all(_keyword(key, value, depth) for key, value in node.items())


def _keyword(key: Any, value: Any, depth: int) -> bool:
    if not isinstance(key, str):
        return False
    if key in _SCHEMA:
        return _subschema(value, depth + 1)
    if key in _SCHEMA_MAP:
        return isinstance(value, dict) and all(_subschema(v, depth + 1) for v in value.values())
    if key in _SCHEMA_LIST:
        return (
            isinstance(value, list)
            and len(value) >= 1
            and all(_subschema(v, depth + 1) for v in value)
        )
    if key == "type":
        if isinstance(value, str):
            return value in _SIMPLE_TYPES
        return (
            isinstance(value, list)
            and len(value) >= 1
            and all(isinstance(v, str) and v in _SIMPLE_TYPES for v in value)
            and len(set(value)) == len(value)
        )
    if key in _STRING:
        return isinstance(value, str)
    if key in _NUMBER:
        return _is_number(value)
    if key in _COUNT:
        return _is_integer(value) and value >= 0
    if key in _BOOLEAN:
        return isinstance(value, bool)
    if key in _ANY:
        return True
    if key in _LIST:
        return isinstance(value, list)
    if key == "multipleOf":
        return _is_number(value) and value > 0
    if key == "required":
        return _string_set(value)
    if key == "dependentRequired":
        return isinstance(value, dict) and all(_string_set(v) for v in value.values())
    if key == "pattern":
        return isinstance(value, str) and _is_regex(value)
    if key == "patternProperties":
        return isinstance(value, dict) and all(
            _is_regex(k) and _subschema(v, depth + 1) for k, v in value.items()
        )
    if key == "$ref":
        return isinstance(value, str) and _LOCAL_REF.match(value) is not None
    if key == "$schema":
        return isinstance(value, str) and value == DIALECT_2020_12
    # The metaschema allows any other keyword, and does not look inside it.
    return key not in _DEFERRED


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _string_set(value: Any) -> bool:
    return (
        isinstance(value, list)
        and all(isinstance(v, str) for v in value)
        and len(set(value)) == len(value)
    )


def _is_regex(value: Any) -> bool:
    # jsonschema's "regex" format check is ``re.compile``; anything else is left to it.
    if not isinstance(value, str):
        return False
    try:
        re.compile(value)
    except (re.error, RecursionError, OverflowError):
        return False
    else:
        return True
