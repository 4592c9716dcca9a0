"""Prompt-injection heuristics: a scored list of patterns; called by
``llmops.runtime.guardrails`` (the ``prompt-injection`` input guardrail) and evals.

Text is normalised first (Unicode NFKC, zero-width characters removed, lower case,
whitespace collapsed), then every rule that matches adds its weight once; a total of
:data:`THRESHOLD` or more is an injection attempt. Base64 blobs are decoded and scored
with the same rules, so encoding an attack does not hide it.

Rules (name, weight: what it catches):

- ``ignore-previous-instructions`` 1.0: "ignore/disregard/forget (all) previous/prior/
  above/system … instructions/rules/prompt";
- ``ignore-everything-above`` 1.0: "disregard everything above", "forget all you were told";
- ``reveal-system-prompt`` 1.0: "print/reveal/repeat … your system prompt / initial
  instructions";
- ``chat-role-tags`` 1.0: chat-template tokens ``<|im_start|>``, ``<|system|>``,
  ``<|start_header_id|>``, ``<|eot_id|>``, ``[INST]``, ``<<SYS>>`` …;
- ``dan`` 1.0: "you are (now) DAN", "do anything now";
- ``base64-instructions`` 1.0: a base64 blob whose decoded text scores ≥ the threshold;
- ``unrestricted-persona`` 0.8: "act as an unfiltered/uncensored/jailbroken …";
- ``you-are-now`` 0.6: "you are now a/an/in …", "from now on you are/will …";
- ``special-mode`` 0.6: "developer/debug/god/jailbreak/sudo/admin mode";
- ``jailbreak`` 0.6: the word jailbreak;
- ``role-prefix`` 0.5: a line starting with "system:", "assistant:" or "### instruction";
- ``system-prompt`` 0.5: the words "system prompt", "hidden/secret instructions";
- ``new-instructions`` 0.5: "new instructions:", "updated instructions:";
- ``no-restrictions`` 0.4: "without restrictions/filters/guidelines/censorship".

Trade-off: rules of weight 1.0 are phrasings that almost never occur in honest requests,
so one is enough to block. Weaker signals ("system prompt", "developer mode", "you are
now a …") are normal in some apps — a question about Android's developer mode, a user who
writes "system:" in a log excerpt — so they only block together with another signal.
Heuristics miss paraphrases, other languages and letter-spacing tricks; they are a cheap
first filter, not a defence on their own: the canary guardrail and output contracts back
them up. Apps whose users legitimately talk about prompts can turn them off with
``guardrails.input.injectionHeuristics: false``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import unicodedata
from dataclasses import dataclass
from itertools import compress

THRESHOLD = 1.0
_MAX_BLOBS = 16
_MAX_BLOB_CHARS = 8192

_QUALIFIER = (
    r"(?:previous|prior|above|earlier|preceding|former|original|initial|system|developer|existing)"
)
_TARGET = (
    r"(?:instructions?|prompts?|rules|directions|guidelines|directives|messages?"
    r"|context|constraints)"
)
#: Words one of which must appear (in the normalised text) for a rule to be tried at all:
#: a substring test costs far less than a regular-expression search.
_KEYWORDS: dict[str, tuple[str, ...]] = {
    "ignore-previous-instructions": ("ignore", "disregard", "forget", "override", "bypass", "skip"),
    "ignore-everything-above": ("ignore", "disregard", "forget"),
    "reveal-system-prompt": ("prompt", "instruction", "message"),
    "chat-role-tags": ("|", "inst]", "sys>>"),
    "dan": ("dan", "anything"),
    "unrestricted-persona": (
        "unfilter",
        "uncensor",
        "unrestrict",
        "unalign",
        "evil",
        "jailbr",
        "unlimit",
    ),
    "you-are-now": ("now",),
    "special-mode": ("mode",),
    "jailbreak": ("jailbr",),
    "role-prefix": ("system", "assistant", "##"),
    "system-prompt": ("prompt", "instruction"),
    "new-instructions": ("instruction",),
    "no-restrictions": ("without",),
}

_RULES: tuple[tuple[str, float, re.Pattern[str]], ...] = tuple(
    (name, weight, re.compile(pattern, re.MULTILINE))
    for name, weight, pattern in (
        (
            "ignore-previous-instructions",
            1.0,
            rf"\b(?:ignore|disregard|forget|override|bypass|skip)\s+(?:(?:all|any|the|your|of|my|these|those)\s+)*"
            rf"{_QUALIFIER}\s+(?:\w+\s+)?{_TARGET}\b",
        ),
        (
            "ignore-everything-above",
            1.0,
            r"\b(?:ignore|disregard|forget)\s+(?:everything|anything|all|what)\s+"
            r"(?:above|before|prior|previously|(?:you\s+(?:were|have\s+been)\s+told))\b",
        ),
        (
            "reveal-system-prompt",
            1.0,
            r"\b(?:reveal|print|show|repeat|output|leak|display|dump|write\s+out|give|tell|send)"
            r"\s+(?:me\s+|us\s+)?(?:your|the)\s+(?:exact\s+|full\s+|entire\s+|complete\s+)?"
            r"(?:system\s+prompt|(?:initial|hidden|original|secret|system)\s+"
            r"(?:instructions|prompt|message)|(?:instructions|prompt)\s+above)"
            r"|\bwhat(?:'s|\s+is|\s+was)\s+your\s+system\s+prompt",
        ),
        (
            "chat-role-tags",
            1.0,
            r"<\|\s*(?:im_start|im_end|system|user|assistant|endoftext|start_header_id|end_header_id|eot_id)\s*\|>"
            r"|\[/?inst\]|<</?sys>>",
        ),
        ("dan", 1.0, r"\byou\s+are\s+(?:now\s+)?dan\b|\bdo\s+anything\s+now\b"),
        (
            "unrestricted-persona",
            0.8,
            r"\b(?:act|behave|respond|pretend|roleplay)\s+(?:as|like|to\s+be)\s+(?:an?\s+)?"
            r"(?:unfiltered|uncensored|unrestricted|unaligned|evil|jailbroken|unlimited)\b",
        ),
        (
            "you-are-now",
            0.6,
            r"\byou\s+are\s+now\s+(?:an?|the|in|no\s+longer)\b|\bfrom\s+now\s+on,?\s+you\s+(?:are|will|must)\b",
        ),
        ("special-mode", 0.6, r"\b(?:developer|debug|god|jailbreak|sudo|admin)\s+mode\b"),
        ("jailbreak", 0.6, r"\bjailbr(?:eak|oken)\w*"),
        (
            "role-prefix",
            0.5,
            r"^\s*(?:system|assistant)\s*:|^\s*#{2,}\s*(?:system|instruction)s?\b",
        ),
        (
            "system-prompt",
            0.5,
            r"\b(?:system\s+prompt|hidden\s+instructions|secret\s+instructions)\b",
        ),
        ("new-instructions", 0.5, r"\b(?:new|updated|real|actual|revised)\s+instructions?\s*:"),
        (
            "no-restrictions",
            0.4,
            r"\bwithout\s+(?:any\s+)?(?:restrictions|filters|guidelines|limitations|censorship)\b",
        ),
    )
)
_ZERO_WIDTH = re.compile(r"[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}|[A-Za-z0-9_-]{24,}={0,2}")
#: Every blob _BASE64 finds is a run of 24 or more of these characters; text translated
#: with _BASE64_CLASS has "a" for each of them and no other "a" (other ASCII becomes " ").
_BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-")
_BASE64_CLASS = {code: ("a" if chr(code) in _BASE64_CHARS else " ") for code in range(128)}
_RUN_OF_24 = "a" * 24
#: The same classes for ASCII text as bytes (``bytes.translate``: a table, no dict lookups).
_BASE64_CLASS_BYTES = bytes(ord(_BASE64_CLASS[code]) for code in range(128)) + b" " * 128
_RUN_OF_24_BYTES = b"a" * 24


@dataclass(frozen=True, slots=True)
class InjectionScore:
    """The total score and the rules that contributed, by name and weight."""

    score: float
    rules: tuple[tuple[str, float], ...]

    @property
    def flagged(self) -> bool:
        return self.score >= THRESHOLD

    def explain(self) -> str:
        parts = ", ".join(f"{name} {weight:g}" for name, weight in self.rules)
        return f"score {self.score:g} ≥ {THRESHOLD:g} ({parts})"


_SPACES = re.compile(r"[^\S\n]*(?:[^\S\n ]|  )[^\S\n]*")
#: every keyword once (some guard several rules)
_ALL_KEYWORDS = tuple(dict.fromkeys(word for words in _KEYWORDS.values() for word in words))
#: For each keyword, the rules it guards (name, weight, pattern), in rule order.
_RULES_OF: dict[str, tuple[tuple[str, float, re.Pattern[str]], ...]] = {
    word: tuple(rule for rule in _RULES if word in _KEYWORDS[rule[0]]) for word in _ALL_KEYWORDS
}
_RULE_ORDER = {rule[0]: index for index, rule in enumerate(_RULES)}
#: Rules whose keyword is common in honest text ("know", "guidance") run only when every
#: word of one of these sets is in the text too: each set is words one alternative of the
#: rule's pattern spells out literally, so a text without them cannot match.
_NEEDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "you-are-now": (("you", "are", "now"), ("from", "now", "you")),
    "dan": (("you", "are", "dan"), ("anything", "now")),
}
#: Texts up to this long have their verdict remembered: enum values, defaults and short
#: answers recur; a long free text rarely does and is always scored afresh.
_MEMO_CHARS = 64


def normalise(text: str) -> str:
    """NFKC, without zero-width characters, lower case, single spaces."""
    if not text.isascii():
        text = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))
    text = text.lower()
    # Only runs of whitespace with a character other than " " and newline, or of two or
    # more spaces, change: printable text (newlines aside) without "  " has none.
    if "  " not in text and (text.isprintable() or text.replace("\n", "").isprintable()):
        return text
    return _SPACES.sub(" ", text)


def score(text: str) -> InjectionScore:
    """How much ``text`` looks like a prompt-injection attempt."""
    if len(text) <= _MEMO_CHARS:
        return _score_short(text)
    return _score(text)


@functools.lru_cache(maxsize=1024)
def _score_short(text: str) -> InjectionScore:
    return _score(text)


def _score(text: str) -> InjectionScore:
    hits = _rules_hit(normalise(text))
    decoded = _decoded_blobs(text)
    if decoded and _total(_rules_hit(normalise(decoded))) >= THRESHOLD:
        hits.append(("base64-instructions", 1.0))
    return InjectionScore(round(_total(hits), 3), tuple(hits))


def _rules_hit(normalised: str) -> list[tuple[str, float]]:
    """The rules that match, in rule order. A rule's regular expression runs only when
    one of its keywords is in the text: one substring test per distinct keyword (all in
    C: ``map`` and ``compress``) skips almost every rule for almost every text."""
    present = [*compress(_ALL_KEYWORDS, map(normalised.__contains__, _ALL_KEYWORDS))]
    if not present:
        return []
    if len(present) == 1:
        rules = _RULES_OF[present[0]]
    else:
        guarded = {rule for word in present for rule in _RULES_OF[word]}
        rules = tuple(sorted(guarded, key=lambda rule: _RULE_ORDER[rule[0]]))
    hits: list[tuple[str, float]] = []
    for name, weight, pattern in rules:
        needs = _NEEDS.get(name)
        if needs is not None and not any(
            all(word in normalised for word in words) for words in needs
        ):
            continue
        if pattern.search(normalised):
            hits.append((name, weight))
    return hits


def _total(hits: list[tuple[str, float]]) -> float:
    return sum(weight for _, weight in hits)


def _decoded_blobs(text: str) -> str:
    """The printable text of the base64 blobs in ``text``, joined by newlines."""
    found: list[str] = []
    # most text has no run of 24 base64 characters; finding that out by mapping each
    # character to "a" (base64) or itself (anything else) is cheaper than a regex scan
    if text.isascii():
        if _RUN_OF_24_BYTES not in text.encode("ascii").translate(_BASE64_CLASS_BYTES):
            return ""
    elif _RUN_OF_24 not in text.translate(_BASE64_CLASS):
        return ""
    for match in _BASE64.finditer(text):
        if len(found) >= _MAX_BLOBS:
            break
        blob = match.group(0)[:_MAX_BLOB_CHARS]
        padded = blob + "=" * (-len(blob) % 4)
        try:
            raw = base64.b64decode(padded, altchars=b"-_" if ("-" in blob or "_" in blob) else None)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        printable = sum(ch.isprintable() or ch.isspace() for ch in decoded)
        if decoded and printable / len(decoded) > 0.9:
            found.append(decoded)
    return "\n".join(found)
