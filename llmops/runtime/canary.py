"""The per-release canary token; used by rendering (the ``canary`` built-in), the output
guardrail that blocks replies containing it, and evals (``canary-leak`` assertions).

The token is derived from the release id alone, so every replica of a release, and the
eval runner, computes the same one without sharing state. It is a tripwire, not a secret:
a reply that contains it proves the model repeated the system prompt.
"""

from __future__ import annotations

import hashlib
import re

CANARY_PREFIX = "llmops-canary-"
#: Any llmops canary token, whichever release it belongs to.
CANARY_RE = re.compile(r"llmops-canary-[0-9a-f]{16}")
_ZERO_WIDTH = re.compile(r"[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")


def canary_token(release_id: str) -> str:
    """``llmops-canary-<16 hex>`` for ``release_id`` (``<app>@sha256:…`` or ``dev``)."""
    digest = hashlib.sha256(f"llmops canary\x00{release_id}".encode()).hexdigest()
    return CANARY_PREFIX + digest[:16]


def contains_canary(text: str, token: str) -> bool:
    """Whether ``text`` contains ``token``, ignoring case and whitespace or zero-width
    characters a model may have slipped inside it."""
    if token in text:
        return True
    if "-" in token and "-" not in text:  # squeezing and lowering make no "-"
        return False
    squeezed = "".join(text.split()).lower()
    if not squeezed.isascii():
        squeezed = _ZERO_WIDTH.sub("", squeezed)
    return token in squeezed
