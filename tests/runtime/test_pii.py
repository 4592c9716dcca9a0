"""PII detection and redaction: each kind, the Luhn check, and what is left alone."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmops.runtime.pii import (
    _EMAIL,
    _PHONE,
    PiiMatch,
    _accept,
    _cards,
    _digits,
    find_pii,
    luhn_ok,
    redact,
)


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111111",
        "5500005555555559",
        "340000000000009",
        "6011000990139424",
        "4012888888881881",
    ],
)
def test_luhn_accepts_valid_card_numbers(number: str) -> None:
    assert luhn_ok(number)


@pytest.mark.parametrize("number", ["4111111111111112", "1234567890123456", "12a4", ""])
def test_luhn_rejects_others(number: str) -> None:
    assert not luhn_ok(number)


@pytest.mark.parametrize(
    "card",
    ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "3400 000000 00009"],
)
def test_card_numbers_are_redacted_in_any_grouping(card: str) -> None:
    text, counts = redact(f"my card is {card}, thanks")
    assert text == "my card is [REDACTED:card], thanks"
    assert counts == {"card": 1}


def test_digit_runs_that_fail_luhn_are_kept() -> None:
    text = "order 1234567890123456 and tracking 9405 5036 9930 0012 3456 78"
    assert redact(text, ["card"]) == (text, {})


@pytest.mark.parametrize(
    "email", ["bob@example.com", "first.last+tag@mail.example.co.uk", "x_y-z@sub-domain.io"]
)
def test_emails_are_redacted(email: str) -> None:
    assert redact(f"write to <{email}>.", ["email"])[0] == "write to <[REDACTED:email]>."


@pytest.mark.parametrize(
    "phone",
    [
        "+1 415 555 0132",
        "+14155550132",
        "+44 20 7946 0958",
        "+33 6 12 34 56 78",
        "(415) 555-0132",
        "415-555-0132",
        "415.555.0132",
        "020 7946 0958",
        "06 12 34 56 78",
    ],
)
def test_phone_numbers_are_redacted(phone: str) -> None:
    text, counts = redact(f"call {phone} today", ["phone"])
    assert text == "call [REDACTED:phone] today", text
    assert counts == {"phone": 1}


@pytest.mark.parametrize(
    "text",
    [
        "released on 2024-01-15 at 10:30",
        "version 1.2.3 costs $1,299.00",
        "invoice 1234567890 for 42 items",
        "room 101, floor 3",
        "ISBN 978-3-16-148410-0",
    ],
)
def test_ordinary_numbers_are_not_pii(text: str) -> None:
    assert find_pii(text) == []


def test_only_the_requested_kinds_and_counts_per_kind() -> None:
    text = "a@b.io c@d.io +1 415 555 0132 4111 1111 1111 1111"
    assert redact(text, ["email"])[1] == {"email": 2}
    redacted, counts = redact(text)
    assert redacted == "[REDACTED:email] [REDACTED:email] [REDACTED:phone] [REDACTED:card]"
    assert counts == {"email": 2, "phone": 1, "card": 1}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789 -+()@.a²٣\n")), max_size=40))
def test_the_short_cuts_skip_only_searches_that_find_nothing(text: str) -> None:
    """Text with fewer than 8 digits holds no card or phone number, and text without "@"
    no e-mail address, by the full search too: skipping it changes nothing."""
    assert _digits(text) == sum(ch.isdigit() for ch in text)
    if _digits(text) < 8:
        assert _cards(text) == []
        phones = [_PHONE.search(text, start) for start in range(len(text))]
        assert not any(m and _accept("phone", m.group(0)) for m in phones)
    if "@" not in text:
        assert _EMAIL.search(text) is None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["ab", "b.c", "@", "x.io", "@x.io", " ", "\n", "-", "+", "_", "\x00", "é"]),
        max_size=12,
    )
)
def test_the_email_search_starts_late_only_where_nothing_matches(parts: list[str]) -> None:
    """The e-mail search starts after the last space before the first "@": it finds what
    the regex finds from every starting position (and finds nothing without an "@")."""
    from llmops.runtime.pii import _search_email

    text = "".join(parts)
    for start in range(len(text) + 1):
        fast, full = _search_email(text, start), _EMAIL.search(text, start)
        assert (fast and fast.span()) == (full and full.span()), (text, start)


def test_one_match_and_several_come_back_in_text_order() -> None:
    assert find_pii("mail bob@example.com", ["email"]) == [PiiMatch("email", 5, 20)]
    text = "+1 415 555 0132 or a@b.io"
    assert [m.kind for m in find_pii(text)] == ["phone", "email"]
