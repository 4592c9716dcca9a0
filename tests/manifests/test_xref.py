"""The secret scan's quick test lets through everything its patterns could match."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from llmops.manifests.xref import _ANY_SECRET, _SECRET_PARTS, SECRET_PATTERNS, _values

SAMPLES = [
    "sk-proj-FAKE0notreal0FAKE0notreal0FAKE",
    "sk-" + "a" * 24,
    "ghp_" + "A" * 36,
    "gho_" + "b" * 30,
    "github_pat_" + "C" * 45,
    "AKIAIOSFODNN7EXAMPLE",
    "xoxb-1234567890-abc",
    "-----BEGIN OPENSSH PRIVATE KEY-----",
]


def test_every_pattern_needs_a_listed_part() -> None:
    for pattern in SECRET_PATTERNS:
        matched = [s for s in SAMPLES if pattern.search(s)]
        assert matched, pattern.pattern  # a sample for every pattern
        for sample in matched:
            assert any(part in sample for part in _SECRET_PARTS), sample


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.sampled_from(["sk-", "gh", "p_", "u_", "github_pat_", "AKIA", "xox", "b-", "-----BEGIN ",
                         "RSA ", "PRIVATE KEY-----", "A", "7", "_", "-", " ", "\x00", "é"]),
        max_size=30,
    ).map("".join)
)
def test_no_match_without_a_part(text: str) -> None:
    if _ANY_SECRET.search(text):
        assert any(part in text for part in _SECRET_PARTS), text


def test_values_are_the_strings_not_the_keys() -> None:
    data = {"a": ["x", {"b": "y", "n": 1}], "sk-key": None, "c": "z"}
    assert sorted(_values(data)) == ["x", "y", "z"]
