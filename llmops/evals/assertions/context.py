"""What a grader may know besides the reply: the sample's measurements and the run's
hooks. Built by ``llmops.evals.runner`` once per sample; read by every handler.

Handlers stay pure: every piece of the world they need (the canary, JSON Schemas read
from files, the judge and embedding models) arrives here, already loaded or as an async
hook the runner provides.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ``prompt -> reply text`` of the judge model (llm-rubric). Raises on provider errors.
JudgeHook = Callable[[str], Awaitable[str]]
#: ``texts -> vectors`` from the provider's ``/v1/embeddings`` (similar). Raises when
#: embeddings are unavailable; ``similar`` then falls back to a lexical comparison.
EmbedHook = Callable[[list[str]], Awaitable[list[list[float]]]]


@dataclass(frozen=True, slots=True)
class GradeContext:
    """Everything besides the reply that an assertion may look at.

    ``app_dir`` is the app's directory: a ``json-schema`` assertion whose value is a file
    path resolves it **relative to the app directory** (like ``spec.guardrails.output
    .jsonSchema``), not to the suite file. ``schemas`` holds those files already parsed,
    keyed by the path as written; the runner loads them once before the run.
    ``blocked`` says which guardrail blocked the request or the reply (and why) when the
    runtime refused it; ``is-refusal`` counts such a sample as a refusal.
    """

    latency_ms: float = 0.0
    cost_usd: float = 0.0
    canary: str | None = None
    output_schema: Mapping[str, Any] | None = None
    app_dir: Path | None = None
    schemas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    blocked: str | None = None
    judge: JudgeHook | None = None
    embed: EmbedHook | None = None


def snippet(text: str, limit: int = 80) -> str:
    """``text`` on one line, cut to ``limit`` characters, quoted: for reasons."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return repr(flat) if flat else "'' (empty output)"


def around(text: str, start: int, end: int, pad: int = 30) -> str:
    """The matched span of ``text`` with a little context, quoted, for reasons."""
    left = max(0, start - pad)
    right = min(len(text), end + pad)
    piece = " ".join(text[left:right].split())
    return ("…" if left else "") + repr(piece) + ("…" if right < len(text) else "")
