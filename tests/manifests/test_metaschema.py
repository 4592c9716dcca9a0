"""The lean metaschema check never calls a schema valid that jsonschema calls invalid,
and it does accept the everyday schemas (so validating them needs no jsonschema)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.manifests.appcheck import schema_problem
from llmops.manifests.metaschema import DIALECT_2020_12, surely_valid

ROOT = Path(__file__).resolve().parents[2]


def _jsonschema_accepts(schema: Any) -> bool:
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError:
        return False
    return True


EVERYDAY: list[dict[str, Any]] = [
    json.loads((ROOT / "manifests/support-bot/schemas/answer.json").read_text()),
    {"type": "object"},
    {},
    {
        "$schema": DIALECT_2020_12,
        "type": "object",
        "properties": {
            "answer": {"type": "string", "minLength": 1, "pattern": "^[A-Z]"},
            "score": {"type": ["number", "null"], "minimum": 0, "maximum": 1.5},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "kind": {"enum": ["a", "b"], "default": "a"},
            "nested": {"$ref": "#/$defs/nested"},
            "either": {"anyOf": [{"type": "string"}, {"type": "integer", "multipleOf": 2}]},
        },
        "patternProperties": {"^x-": True},
        "additionalProperties": False,
        "required": ["answer"],
        "$defs": {"nested": {"type": "object", "minProperties": 1.0}},
        "if": {"required": ["kind"]},
        "then": {"not": {"required": ["tags"]}},
        "examples": [{"answer": "Yes"}],
        "x-vendor": {"type": 12},
    },
]

INVALID: list[dict[str, Any]] = [
    {"type": "strng"},
    {"type": []},
    {"type": ["string", "string"]},
    {"minLength": -1},
    {"minLength": 1.5},
    {"maxItems": True},
    {"required": ["a", "a"]},
    {"required": "a"},
    {"properties": {"a": 3}},
    {"items": "string"},
    {"allOf": []},
    {"pattern": "("},
    {"patternProperties": {"(": {}}},
    {"multipleOf": 0},
    {"enum": "a"},
    {"title": 3},
    {"uniqueItems": "yes"},
    {"dependentRequired": {"a": [1]}},
]


@pytest.mark.parametrize("schema", EVERYDAY, ids=range(len(EVERYDAY)))
def test_everyday_schemas_need_no_jsonschema(schema: dict[str, Any]) -> None:
    assert _jsonschema_accepts(schema)
    assert surely_valid(schema)


@pytest.mark.parametrize("schema", INVALID, ids=[json.dumps(s) for s in INVALID])
def test_invalid_schemas_go_to_jsonschema_for_the_message(schema: dict[str, Any]) -> None:
    assert not _jsonschema_accepts(schema)
    assert not surely_valid(schema)
    problem = schema_problem(schema)
    assert problem is not None and problem.startswith("not a valid JSON Schema")


def test_other_dialects_and_unchecked_keywords_are_left_to_jsonschema() -> None:
    assert not surely_valid({"$schema": "http://json-schema.org/draft-07/schema#"})
    assert not surely_valid({"$id": "https://example.com/s"})
    assert not surely_valid({"$ref": "other.json#/x"})
    assert not surely_valid({"dependencies": {"a": ["b"]}})


_ODD: st.SearchStrategy[Any] = st.sampled_from([None, True, 3, -1, 1.5, "strng", "(", [], {}, ["a", "a"]])
_NAMES = st.sampled_from(["a", "b", "^x-", "(", "x y", ""])


def _keywords(schema: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Schemas whose keyword values are mostly well-typed, sometimes not."""

    def either(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(good, good, good, _ODD)

    counts = st.one_of(st.integers(0, 5), st.just(2.0))
    numbers = st.one_of(st.integers(-5, 5), st.floats(-5, 5, allow_nan=False))
    strings = st.lists(_NAMES, max_size=3)
    simple = st.sampled_from(["string", "object", "array", "integer", "number", "null", "boolean"])
    by_key: dict[str, st.SearchStrategy[Any]] = {
        "type": st.one_of(simple, st.lists(simple, min_size=1, max_size=3, unique=True)),
        "properties": st.dictionaries(_NAMES, schema, max_size=3),
        "$defs": st.dictionaries(_NAMES, schema, max_size=2),
        "patternProperties": st.dictionaries(_NAMES, schema, max_size=2),
        "items": schema,
        "not": schema,
        "additionalProperties": schema,
        "anyOf": st.lists(schema, min_size=1, max_size=3),
        "prefixItems": st.lists(schema, min_size=1, max_size=2),
        "required": st.lists(_NAMES, max_size=3, unique=True),
        "dependentRequired": st.dictionaries(_NAMES, strings, max_size=2),
        "minLength": counts,
        "maxItems": counts,
        "minContains": counts,
        "minimum": numbers,
        "exclusiveMaximum": numbers,
        "multipleOf": st.one_of(st.integers(1, 5), st.floats(0.1, 5)),
        "pattern": st.sampled_from(["^a", "[0-9]+", "(", "a{2,1}", "\\d"]),
        "enum": st.lists(_NAMES, max_size=3),
        "const": _ODD,
        "examples": st.lists(_ODD, max_size=2),
        "uniqueItems": st.booleans(),
        "title": st.text(max_size=5),
        "format": st.sampled_from(["email", "date-time", "nonsense"]),
        "$ref": st.sampled_from(["#", "#/$defs/a", "#/$defs/a b", "other.json", "#a"]),
        "$schema": st.sampled_from([DIALECT_2020_12, "https://json-schema.org/draft/2020-12/schema#"]),
        "x-custom": _ODD,
    }
    return st.fixed_dictionaries(
        {}, optional={key: either(value) for key, value in by_key.items()}
    )


_SCHEMAS: st.SearchStrategy[Any] = st.recursive(
    st.one_of(st.booleans(), st.just({})),
    _keywords,
    max_leaves=8,
).filter(lambda s: isinstance(s, dict))


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_SCHEMAS)
def test_surely_valid_never_contradicts_jsonschema(schema: dict[str, Any]) -> None:
    if surely_valid(schema):
        assert _jsonschema_accepts(schema), schema
