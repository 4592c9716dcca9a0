"""Output guardrails for a reply that is streamed as it arrives; called by
``llmops.runtime.invoke`` for ``stream: true`` requests of apps without an output schema.

Text is released in segments that end at a *safe cut*: a whitespace character whose
neighbours are not digits or phone punctuation. No PII pattern (``llmops.runtime.pii``)
and no canary token can span such a cut, so redacting each segment on its own gives the
same text as redacting the whole reply. What cannot be taken back: text released before
a canary leak or before the length limit is passed has already been sent; the stream is
then cut with an error event. Apps that need all-or-nothing use an output schema (such
replies are checked whole before the first byte is sent) or non-streamed requests.
"""

from __future__ import annotations

from llmops.runtime import pii
from llmops.runtime.canary import contains_canary
from llmops.runtime.errors import GuardrailBlocked
from llmops.runtime.guardrails import OutputPolicy

_DIGITISH = frozenset("0123456789()+-.")


class StreamGuard:
    """Feed deltas in, get releasable (checked, redacted) text out."""

    def __init__(self, policy: OutputPolicy) -> None:
        self.policy = policy
        self.text = ""
        self.released = 0
        self.redactions: dict[str, int] = {}

    def feed(self, delta: str) -> str:
        """Take one delta; return the text that may be sent now (maybe empty)."""
        self.text += delta
        self._check()
        cut = self._safe_cut()
        if cut <= self.released:
            return ""
        return self._release(cut)

    def finish(self) -> str:
        """The rest of the reply, once the model is done."""
        self._check()
        return self._release(len(self.text))

    def _check(self) -> None:
        policy = self.policy
        if policy.max_length is not None and len(self.text) > policy.max_length:
            raise GuardrailBlocked(
                "output",
                "output-max-length",
                f"the reply passed the limit of {policy.max_length:,} characters",
            )
        window = self.text[max(0, self.released - 2 * len(policy.canary)) :]
        if policy.block_canary and contains_canary(window, policy.canary):
            raise GuardrailBlocked(
                "output",
                "canary",
                "the reply contains the release's canary token (a system-prompt leak)",
            )

    def _safe_cut(self) -> int:
        text = self.text
        for index in range(len(text) - 2, max(self.released, 1) - 1, -1):
            if (
                text[index].isspace()
                and text[index - 1] not in _DIGITISH
                and text[index + 1] not in _DIGITISH
            ):
                return index + 1
        return self.released

    def _release(self, end: int) -> str:
        segment = self.text[self.released : end]
        self.released = end
        if not self.policy.redact:
            return segment
        redacted, counts = pii.redact(segment, self.policy.redact)
        for kind, count in counts.items():
            self.redactions[kind] = self.redactions.get(kind, 0) + count
        return redacted
