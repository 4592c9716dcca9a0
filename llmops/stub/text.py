"""Token counts and deterministic embeddings of the stub model; called by its server.

Pure. Tokens are whitespace-separated words. An embedding is a bag of hashed words
(signed feature hashing into ``dim`` buckets, L2-normalised), so texts that share words
have a higher cosine similarity, and the same text always gets the same vector.
"""

from __future__ import annotations

import hashlib
import math
import re

_WORD = re.compile(r"\w+")
_PIECE = re.compile(r"\s*\S+")


def count_tokens(text: str) -> int:
    """Whitespace-separated tokens in ``text``."""
    return len(text.split())


def pieces(text: str) -> list[str]:
    """``text`` split into tokens, each with the whitespace before it (trailing whitespace
    goes with the last one); joined they give ``text`` back."""
    found: list[str] = _PIECE.findall(text)
    tail = text[sum(map(len, found)) :]
    if tail:
        found = [*found[:-1], found[-1] + tail] if found else [tail]
    return found


def first_tokens(text: str, limit: int) -> str:
    """The first ``limit`` whitespace tokens of ``text``, spacing kept."""
    return "".join(pieces(text)[:limit])


def embed_text(text: str, dim: int = 64) -> list[float]:
    """A unit vector of ``dim`` floats for ``text`` (all zeros when it has no words)."""
    vector = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vector[digest % dim] += 1.0 if (digest >> 32) & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [round(x / norm, 8) for x in vector] if norm else vector


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors (0 when either is all zeros)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0
