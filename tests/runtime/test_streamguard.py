"""Streaming output guardrails: text is released at safe cuts, redaction matches the
whole-text result however the reply is split, and leaks or overlong replies stop it."""

from __future__ import annotations

import pytest

from llmops.runtime.canary import canary_token
from llmops.runtime.errors import GuardrailBlocked
from llmops.runtime.guardrails import OutputPolicy
from llmops.runtime.pii import redact
from llmops.runtime.streamguard import StreamGuard

CANARY = canary_token("dev")
REPLY = (
    "Hello! Write to bob@example.com or call +1 415 555 0132. Your card 4111 1111 1111 1111 "
    "was charged on 2024-01-15. Office: (415) 555-0132, fax 020 7946 0958. Bye now."
)
KINDS = ("card", "email", "phone")


def run(deltas: list[str], policy: OutputPolicy) -> tuple[list[str], StreamGuard]:
    guard = StreamGuard(policy)
    out = [guard.feed(d) for d in deltas]
    out.append(guard.finish())
    return out, guard


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11, 64, 1000])
def test_redaction_is_the_same_however_the_reply_is_split(size: int) -> None:
    deltas = [REPLY[i : i + size] for i in range(0, len(REPLY), size)]
    out, guard = run(deltas, OutputPolicy(canary=CANARY, redact=KINDS))
    expected, counts = redact(REPLY, KINDS)
    assert "".join(out) == expected
    assert guard.redactions == counts


def test_text_is_released_before_the_end() -> None:
    words = [w + " " for w in ["one", "two", "three", "four", "five", "six"]]
    out, _ = run(words, OutputPolicy(canary=CANARY))
    assert any(out[:-1]), "nothing was streamed before the reply ended"
    assert "".join(out) == "".join(words)


@pytest.mark.parametrize("size", [1, 4, 9, 40])
def test_a_canary_leak_stops_the_stream(size: int) -> None:
    text = f"The internal reference is {CANARY} and more text follows here."
    guard = StreamGuard(OutputPolicy(canary=CANARY))
    sent = ""
    with pytest.raises(GuardrailBlocked) as caught:
        for i in range(0, len(text), size):
            sent += guard.feed(text[i : i + size])
        sent += guard.finish()
    assert caught.value.guardrail == "canary"
    assert CANARY not in sent


def test_an_overlong_reply_stops_the_stream() -> None:
    guard = StreamGuard(OutputPolicy(canary=CANARY, max_length=20))
    guard.feed("0123456789 ")
    with pytest.raises(GuardrailBlocked, match="limit of 20"):
        guard.feed("0123456789 ")
