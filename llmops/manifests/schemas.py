"""JSON Schemas of the manifest kinds, for editors and `llmops schema`.

Called by ``llmops.api``; the committed files under ``schemas/`` are these, and a test
keeps them equal.
"""

from __future__ import annotations

import json
from typing import Any

from llmops.domain.errors import UsageError
from llmops.domain.models import KINDS

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_file_name(kind: str) -> str:
    return f"{kind.lower()}.schema.json"


def resolve_kind(kind: str) -> str:
    """The canonical kind name for a case-insensitive ``kind``; a UsageError otherwise."""
    for name in KINDS:
        if name.lower() == kind.lower():
            return name
    raise UsageError(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of ``kind``, as YAML editors read it."""
    name = resolve_kind(kind)
    schema = KINDS[name].model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": f"https://llmops.dev/schemas/v1/{schema_file_name(name)}", **schema}


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
