"""The canary token: deterministic per release, distinct across releases, detected."""

from __future__ import annotations

import pytest

from llmops.runtime.canary import CANARY_RE, canary_token, contains_canary

RELEASE = "support-bot@sha256:" + "ab" * 32


def test_token_shape_and_determinism() -> None:
    token = canary_token(RELEASE)
    assert CANARY_RE.fullmatch(token)
    assert token.startswith("llmops-canary-") and len(token) == len("llmops-canary-") + 16
    assert canary_token(RELEASE) == token


def test_tokens_differ_between_releases() -> None:
    other = "support-bot@sha256:" + "cd" * 32
    assert canary_token(RELEASE) != canary_token(other)
    assert canary_token("dev") != canary_token(RELEASE)


def test_detection_tolerates_case_and_inserted_whitespace() -> None:
    token = canary_token(RELEASE)
    assert contains_canary(f"my reference is {token}.", token)
    assert contains_canary(f"ref: {token.upper()}", token)
    spaced = token[:10] + " \u200b" + token[10:]
    assert contains_canary(spaced, token)
    assert not contains_canary("llmops-canary-0000000000000000", token)
    assert not contains_canary("nothing to see", token)


@pytest.mark.parametrize(
    "text",
    [
        "no dash here at all, LLMOPS CANARY",
        "see llmops-canary-",
        "a-b-c-d-e-f",
    ],
)
def test_texts_without_the_whole_token_are_not_leaks(text: str) -> None:
    assert not contains_canary(text, canary_token("dev"))


def test_a_token_split_by_spaces_and_case_is_still_found() -> None:
    token = canary_token("dev")
    assert contains_canary(f"ref: {token[:7]} \n{token[7:].upper()}", token)
