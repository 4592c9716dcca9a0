"""Binding inputs: defaults, unknown names with did-you-mean, required, types, CLI text."""

from __future__ import annotations

from typing import Any

import pytest

from llmops.domain.models.app import InputSpec
from llmops.runtime.errors import InputRejected
from llmops.runtime.inputs import bind_inputs, coerce_text


def spec(**fields: Any) -> InputSpec:
    return InputSpec.model_validate(fields)


DECLARED = {
    "question": spec(type="string", maxLength=20),
    "tier": spec(type="string", default="standard", enum=["free", "standard"]),
    "limit": spec(type="integer", default=3, minimum=1, maximum=5),
    "note": spec(type="string", required=False),
}


def test_defaults_and_optional_inputs_are_filled_in_declared_order() -> None:
    bound = bind_inputs(DECLARED, {"question": "hi"})
    assert bound == {"question": "hi", "tier": "standard", "limit": 3, "note": None}
    assert list(bound) == list(DECLARED)


def test_null_for_an_optional_input_means_not_given() -> None:
    assert bind_inputs(DECLARED, {"question": "hi", "tier": None})["tier"] == "standard"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InputRejected) as caught:
        bind_inputs(DECLARED, {"questoin": "hi", "limit": 9, "tier": "gold"})
    problems = {p.name: p.message for p in caught.value.problems}
    assert "did you mean 'question'" in problems["questoin"]
    assert "is required" in problems["question"]
    assert "≤ 5" in problems["limit"]
    assert "must be one of" in problems["tier"]
    assert "input 'question'" in caught.value.message


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (3, "must be (a )?string"),
        (True, "must be (a )?string"),
        ("x" * 21, "at most 20"),
        ([], "must be (a )?string"),
    ],
)
def test_values_are_checked_with_the_manifest_rule(value: Any, needle: str) -> None:
    with pytest.raises(InputRejected, match=needle):
        bind_inputs(DECLARED, {"question": value})


def test_booleans_are_not_integers() -> None:
    with pytest.raises(InputRejected, match=r"must be (an )?integer"):
        bind_inputs(DECLARED, {"question": "q", "limit": True})


def test_an_app_without_inputs_says_so() -> None:
    with pytest.raises(InputRejected, match="takes no inputs"):
        bind_inputs({}, {"x": 1})


@pytest.mark.parametrize(
    ("type_", "raw", "expected"),
    [
        ("string", " a b ", " a b "),
        ("integer", "42", 42),
        ("number", "2.5", 2.5),
        ("number", "3", 3),
        ("boolean", "yes", True),
        ("boolean", "False", False),
    ],
)
def test_cli_text_is_read_as_the_declared_type(type_: str, raw: str, expected: Any) -> None:
    assert coerce_text(spec(type=type_), raw) == expected


@pytest.mark.parametrize(
    ("type_", "raw"), [("integer", "4.5"), ("number", "nan"), ("boolean", "maybe")]
)
def test_cli_text_of_the_wrong_type_is_refused(type_: str, raw: str) -> None:
    with pytest.raises(ValueError, match="must be"):
        coerce_text(spec(type=type_), raw)


def test_unknown_names_stay_text_for_binding_to_reject() -> None:
    assert coerce_text(None, "7") == "7"
