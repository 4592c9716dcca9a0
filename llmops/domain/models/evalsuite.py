"""The EvalSuite kind: cases with inputs and assertions, inline or from a dataset file.

Loaded by ``llmops.manifests``; run by ``llmops.evals``.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from llmops.domain.ids import CASE_ID_RE
from llmops.domain.models.base import Metadata, RelPath, Strict, empty_list

BaseAssertionType = Literal[
    "equals",
    "contains",
    "icontains",
    "contains-any",
    "contains-all",
    "regex",
    "starts-with",
    "is-json",
    "json-schema",
    "json-path",
    "length",
    "latency",
    "cost",
    "similar",
    "llm-rubric",
    "is-refusal",
    "canary-leak",
    "pii-leak",
]
BASE_ASSERTION_TYPES: tuple[str, ...] = get_args(BaseAssertionType)
#: Every accepted ``type``: each base type and its ``not-`` inversion.
ASSERTION_TYPES: frozenset[str] = frozenset(
    BASE_ASSERTION_TYPES + tuple(f"not-{t}" for t in BASE_ASSERTION_TYPES)
)

_NEEDS_STRING = {"equals", "contains", "icontains", "regex", "starts-with", "llm-rubric"}
_NEEDS_STRING_LIST = {"contains-any", "contains-all"}
_NEEDS_THRESHOLD = {"latency", "cost"}


class Assertion(Strict):
    """One check on a reply. ``not-<type>`` inverts any type (an ERROR is never inverted)."""

    type: str = Field(description="Assertion type, e.g. contains, json-schema, not-pii-leak.")
    value: Any = Field(default=None, description="What to compare against; meaning depends on type.")
    threshold: float | None = Field(
        default=None,
        description="Limit for latency (ms), cost (USD), similar (min cosine) or llm-rubric (min score).",
    )
    path: str | None = Field(default=None, description="JSONPath for json-path, e.g. $.answer.")
    min: int | None = Field(default=None, ge=0, description="Minimum length for length.")
    max: int | None = Field(default=None, ge=0, description="Maximum length for length.")
    weight: float = Field(default=1.0, ge=0, description="Weight of this assertion in the case score.")

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ASSERTION_TYPES:
            import difflib

            close = difflib.get_close_matches(value, sorted(ASSERTION_TYPES), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise PydanticCustomError(
                "assertion_type",
                "unknown assertion type {value}{hint} (known: {known})",
                {"value": repr(value), "hint": hint, "known": ", ".join(BASE_ASSERTION_TYPES)},
            )
        return value

    @property
    def base_type(self) -> str:
        return self.type.removeprefix("not-")

    @property
    def inverted(self) -> bool:
        return self.type.startswith("not-")

    @model_validator(mode="after")
    def _params(self) -> Assertion:
        base = self.base_type
        if base in _NEEDS_STRING and not isinstance(self.value, str):
            raise PydanticCustomError(
                "assertion_value", "{type} needs a string value", {"type": self.type}
            )
        if base in _NEEDS_STRING_LIST and not (
            isinstance(self.value, list) and self.value and all(isinstance(v, str) for v in self.value)
        ):
            raise PydanticCustomError(
                "assertion_value", "{type} needs a non-empty list of strings as value", {"type": self.type}
            )
        if base in _NEEDS_THRESHOLD and self.threshold is None:
            raise PydanticCustomError(
                "assertion_value", "{type} needs threshold", {"type": self.type}
            )
        if base == "json-path" and not (self.path and self.path.startswith("$")):
            raise PydanticCustomError(
                "assertion_value", "json-path needs path starting with '$', e.g. $.answer"
            )
        if base == "length" and self.min is None and self.max is None:
            raise PydanticCustomError("assertion_value", "length needs min, max or both")
        if base == "regex":
            import re

            try:
                re.compile(str(self.value))
            except re.error as exc:
                raise PydanticCustomError(
                    "regex", "value is not a valid regular expression: {reason}", {"reason": str(exc)}
                ) from None
        if base == "similar" and not isinstance(self.value, str):
            raise PydanticCustomError("assertion_value", "similar needs a string value")
        if base == "json-schema" and not isinstance(self.value, dict | str):
            raise PydanticCustomError(
                "assertion_value", "json-schema needs a schema (inline mapping) or a file path as value"
            )
        return self


class Case(Strict):
    """One eval case: inputs for the prompt and assertions on the reply."""

    id: str = Field(description="Unique id within the suite; cited in reports and requiredCases.")
    description: str = Field(default="", description="What the case checks.")
    inputs: dict[str, Any] = Field(default_factory=dict, description="Prompt input values.")
    assert_: list[Assertion] = Field(
        default_factory=empty_list, alias="assert", description="Checks on the reply."
    )
    tags: list[str] = Field(default_factory=empty_list, description="Labels for filtering and reports.")
    weight: float = Field(default=1.0, gt=0, description="Weight in the suite's pass rate.")
    required: bool = Field(
        default=False, description="Must pass whatever the pass rate (e.g. security cases)."
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not CASE_ID_RE.match(value):
            raise PydanticCustomError(
                "case_id",
                "case id {value} must be 1-128 letters, digits, '-', '_' or '.'",
                {"value": repr(value)},
            )
        return value


class SuiteDefaults(Strict):
    """Values merged into every case of the suite."""

    inputs: dict[str, Any] = Field(default_factory=dict, description="Default inputs.")
    assert_: list[Assertion] = Field(
        default_factory=empty_list, alias="assert", description="Assertions added to every case."
    )


class SuiteSpec(Strict):
    """The cases of a suite."""

    description: str = Field(default="", description="What the suite guards.")
    defaults: SuiteDefaults = Field(default_factory=SuiteDefaults, description="Shared case values.")
    dataset: RelPath | None = Field(
        default=None,
        description="A JSONL, CSV or YAML file of cases, relative to the suite file's directory.",
    )
    cases: list[Case] = Field(default_factory=empty_list, description="Inline cases.")

    @model_validator(mode="after")
    def _has_cases(self) -> SuiteSpec:
        if not self.cases and self.dataset is None:
            raise PydanticCustomError(
                "empty_suite", "a suite needs cases, a dataset, or both"
            )
        # ``at`` (relative to spec) lets diagnostics point at the offending case.
        seen: set[str] = set()
        for index, case in enumerate(self.cases):
            if case.id in seen:
                raise PydanticCustomError(
                    "duplicate_case",
                    "case id {id} is used twice; case ids are unique within a suite",
                    {"id": repr(case.id), "at": ("cases", index, "id")},
                )
            seen.add(case.id)
            if not case.assert_ and not self.defaults.assert_:
                raise PydanticCustomError(
                    "no_assertions",
                    "case {id} has no assertions (add assert: or defaults.assert)",
                    {"id": repr(case.id), "at": ("cases", index)},
                )
        return self


class EvalSuite(Strict):
    """An eval suite: manifests/<app>/evals/<suite>.yaml."""

    api_version: Literal["llmops.dev/v1"] = Field(description="Always llmops.dev/v1.")
    kind: Literal["EvalSuite"] = Field(description="Always EvalSuite.")
    metadata: Metadata = Field(description="Suite name (used by pipeline gates) and labels.")
    spec: SuiteSpec = Field(description="The suite.")
