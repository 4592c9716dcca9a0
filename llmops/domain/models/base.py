"""Shared pieces of the manifest models: the strict base, metadata, typed scalars.

Used by every kind in ``llmops.domain.models``. Pydantic at the edge: user YAML is
parsed once into these models; nothing downstream sees raw dicts.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from llmops.domain.ids import dns_label_problem, release_id_problem

API_VERSION = "llmops.dev/v1"


class Strict(BaseModel):
    """Base of every manifest model: unknown fields are errors, camelCase in YAML, frozen."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
        use_attribute_docstrings=False,
        # Build validators on first use: nested models are then built once, inside the
        # kind that uses them, instead of once more on their own at import.
        defer_build=True,
    )


def _dns_label(value: str) -> str:
    problem = dns_label_problem(value)
    if problem:
        raise PydanticCustomError("dns_label", problem)
    return value


def _release_id(value: str) -> str:
    problem = release_id_problem(value)
    if problem:
        raise PydanticCustomError("release_id", problem)
    return value


def rel_path_problem(value: str) -> str | None:
    """Why ``value`` is not a safe relative path inside the repository, or None."""
    if not value.strip():
        return "must be a relative path, not empty"
    if "\\" in value:
        return "use '/' as the path separator, not '\\'"
    if "\x00" in value:
        return "must not contain a NUL byte"
    # As PurePosixPath sees it, on the string: absolute when it starts with '/', and
    # its parts are the '/'-separated segments ('' and '.' dropped, '..' kept).
    if value.startswith("/") or _DRIVE_RE.match(value):
        return f"must be relative to the manifest's directory, not absolute ({value})"
    if ".." in value.split("/"):
        return f"must stay inside the repository: '..' is not allowed ({value})"
    return None


_DRIVE_RE = re.compile(r"[A-Za-z]:")


def _rel_path(value: str) -> str:
    problem = rel_path_problem(value)
    if problem:
        raise PydanticCustomError("rel_path", problem)
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise PydanticCustomError(
            "regex", "is not a valid regular expression: {reason}", {"reason": str(exc)}
        ) from None
    return value


def _duration(value: str) -> str:
    if parse_duration(value) is None:
        raise PydanticCustomError(
            "duration",
            "{value} is not a duration: use a number and a unit, e.g. 30s, 15m, 1h, 2d, 1h30m",
            {"value": repr(value)},
        )
    return value


_DURATION_RE = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str) -> float | None:
    """Seconds in ``1h30m``-style text, or None when the text is not a duration."""
    text = value.strip()
    if not text:
        return None
    pos = 0
    total = 0.0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            return None
        total += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) else None


_QUANTITY_RE = re.compile(r"^(\d+(\.\d+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def _quantity(value: str) -> str:
    if not _QUANTITY_RE.match(value):
        raise PydanticCustomError(
            "quantity",
            "{value} is not a Kubernetes quantity: "
            "use e.g. 250m or 1 for CPU, 256Mi or 1Gi for memory",
            {"value": repr(value)},
        )
    return value


def empty_list() -> list[Any]:
    """``default_factory`` of list fields: with ``list`` itself pydantic reads the text
    signature of a builtin, which imports and compiles ``tokenize`` (~8 ms per process)."""
    return []


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
ReleaseId = Annotated[str, AfterValidator(_release_id)]
RelPath = Annotated[str, AfterValidator(_rel_path)]
Regex = Annotated[str, AfterValidator(_regex)]
Duration = Annotated[str, AfterValidator(_duration)]
Quantity = Annotated[str, AfterValidator(_quantity)]


class Metadata(Strict):
    """Identity of a manifest, as in Kubernetes."""

    name: DnsLabel = Field(
        description="Unique name; a DNS label because it becomes a Kubernetes name."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Free-form labels copied onto rendered resources."
    )
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Free-form notes; not copied anywhere."
    )
