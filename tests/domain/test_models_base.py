"""Shared model pieces: relative paths judged as PurePosixPath would, empty defaults."""

from __future__ import annotations

import itertools
import re
from pathlib import PurePosixPath

from llmops.domain.models import KINDS
from llmops.domain.models.base import empty_list, rel_path_problem


def _with_pathlib(value: str) -> str | None:
    """The check as it was written with PurePosixPath (after the text checks)."""
    pure = PurePosixPath(value)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", value):
        return f"must be relative to the manifest's directory, not absolute ({value})"
    if ".." in pure.parts:
        return f"must stay inside the repository: '..' is not allowed ({value})"
    return None


def test_rel_path_problem_matches_pathlib() -> None:
    pieces = ["a", "/", ".", "..", "C:", "x/..", "//", "...", "a..b", "./"]
    checked = 0
    for size in range(1, 5):
        for combo in itertools.product(pieces, repeat=size):
            value = "".join(combo)
            assert rel_path_problem(value) == _with_pathlib(value), value
            checked += 1
    assert checked > 10_000


def test_empty_list_is_fresh_each_time() -> None:
    first, second = empty_list(), empty_list()
    assert first == second == [] and first is not second


def test_list_defaults_are_not_shared_between_models() -> None:
    suite = KINDS["EvalSuite"].model_validate(
        {
            "apiVersion": "llmops.dev/v1",
            "kind": "EvalSuite",
            "metadata": {"name": "s"},
            "spec": {"cases": [{"id": "a", "assert": [{"type": "is-json"}]}, {"id": "b", "assert": [{"type": "is-json"}]}]},
        }
    )
    cases = suite.spec.cases  # type: ignore[attr-defined]
    assert cases[0].tags == [] and cases[0].tags is not cases[1].tags
