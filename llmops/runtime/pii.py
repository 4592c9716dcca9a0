"""Find and redact personal data (e-mail addresses, phone numbers, payment card numbers);
called by ``llmops.runtime.guardrails`` (output redaction) and evals (``pii-leak``).

Pure functions over text. Each kind is a regular expression plus, where a pattern alone
would catch too much, a check on the digits:

- ``card``: 13–19 digits, optionally grouped by single spaces or dashes, that pass the
  Luhn checksum — order numbers and other long digit runs that fail it are kept;
- ``email``: ``local@domain.tld``;
- ``phone``: an international number (``+`` then 8–15 digits, grouped), a North American
  number with separators (``(555) 123-4567``, ``555-123-4567``, ``555.123.4567``) or a
  national number starting with 0 in groups (``020 7946 0958``, ``06 12 34 56 78``).
  Bare digit runs without ``+`` or separators are not treated as phone numbers (too many
  ids, amounts and dates look like them).

Cards are found first, so a card number is never half-redacted as a phone number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

PII_KINDS = ("card", "email", "phone")

_DIGIT_RUN = re.compile(r"(?<![\w-])\d+(?:[ -]\d+)*")
_DIGIT_GROUP = re.compile(r"\d+")
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
)
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}"
    r"|(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}"
    r"|0\d{1,4}(?:[ .-]\d{2,4}){2,4}"
    r")(?![\w])"
)
_PATTERNS: dict[str, re.Pattern[str]] = {"email": _EMAIL, "phone": _PHONE}
_ASCII_DIGITS = b"0123456789"
_NOT_DIGIT = re.compile(r"\D")


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """One piece of personal data in a text, by kind and character span."""

    kind: str
    start: int
    end: int


def luhn_ok(digits: str) -> bool:
    """Whether ``digits`` (digits only) pass the Luhn checksum used by payment cards."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _accept(kind: str, text: str) -> bool:
    if kind == "phone":  # only phone numbers have a digit count to check
        digits = len(_NOT_DIGIT.sub("", text))
        return 8 <= digits <= 15 if text.startswith("+") else 9 <= digits <= 12
    return True


def _cards(text: str) -> list[tuple[int, int]]:
    """Spans of Luhn-valid 13–19 digit numbers, grouped by single spaces or dashes.

    Within a longer run of digit groups (a phone number, then a card) every window of
    whole groups is tried, longest first, so a card next to other digits is still found.
    """
    spans: list[tuple[int, int]] = []
    for run in _DIGIT_RUN.finditer(text):
        groups = [(m.start(), m.end()) for m in _DIGIT_GROUP.finditer(text, run.start(), run.end())]
        first = 0
        while first < len(groups):
            found = None
            for last in range(min(first + 18, len(groups) - 1), first - 1, -1):
                digits = "".join(text[a:b] for a, b in groups[first : last + 1])
                if 13 <= len(digits) <= 19 and luhn_ok(digits):
                    found = last
                    break
            if found is None:
                first += 1
                continue
            spans.append((groups[first][0], groups[found][1]))
            first = found + 1
    return spans


def _digits(text: str) -> int:
    """How many characters of ``text`` are digits (``str.isdigit``)."""
    if text.isascii():  # the bytes without their digits, in C: no test per character
        return len(text) - len(text.encode("ascii").translate(None, _ASCII_DIGITS))
    return sum(map(str.isdigit, text))


def find_pii(text: str, kinds: Iterable[str] = PII_KINDS) -> list[PiiMatch]:
    """Every match of the wanted kinds, in text order, without overlaps.

    Kinds are searched in the order card, email, phone; each search sees the text with
    the earlier matches blanked out, so a match never overlaps an earlier one. Text with
    no ``@`` cannot hold an e-mail address, and text with fewer than 8 digits no card or
    phone number: those (most replies) are answered without a regular expression.
    """
    wanted = set(kinds)
    if "@" not in text:
        wanted.discard("email")
    if ("card" in wanted or "phone" in wanted) and _digits(text) < 8:
        wanted -= {"card", "phone"}
    if not wanted:
        return []
    taken: list[PiiMatch] = []
    if "card" in wanted:
        taken.extend(PiiMatch("card", a, b) for a, b in _cards(text))
    masked = text
    for kind in ("email", "phone"):
        if kind not in wanted:
            continue
        for match in taken:
            masked = (
                masked[: match.start] + "\x00" * (match.end - match.start) + masked[match.end :]
            )
        pattern = _PATTERNS[kind]
        position = 0
        search = _search_email if kind == "email" else pattern.search
        while (found := search(masked, position)) is not None:
            if _accept(kind, found.group(0)):
                taken.append(PiiMatch(kind, found.start(), found.end()))
                position = found.end()
            else:
                position = found.start() + 1
    if len(taken) < 2:
        return taken
    return sorted(taken, key=_start)


def _start(match: PiiMatch) -> int:
    return match.start


def _search_email(text: str, position: int) -> re.Match[str] | None:
    """``_EMAIL.search(text, position)``, started where a match can begin: an address
    holds an "@" and no space before it, so none starts before the last space ahead of
    the first "@" (the regex would try, and fail, at every character up to there)."""
    at = text.find("@", position)
    if at < 0:
        return None
    return _EMAIL.search(text, max(position, text.rfind(" ", position, at) + 1))


def redact(text: str, kinds: Iterable[str] = PII_KINDS) -> tuple[str, dict[str, int]]:
    """``text`` with each match replaced by ``[REDACTED:<kind>]``, and counts per kind."""
    matches = find_pii(text, kinds)
    if not matches:
        return text, {}
    counts: dict[str, int] = {}
    parts: list[str] = []
    position = 0
    for match in matches:
        parts.append(text[position : match.start])
        parts.append(f"[REDACTED:{match.kind}]")
        counts[match.kind] = counts.get(match.kind, 0) + 1
        position = match.end
    parts.append(text[position:])
    return "".join(parts), counts
