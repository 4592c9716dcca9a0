"""Map manifest sampling parameters to OpenAI's wire names; called by the runtime and evals.

The result is what goes in ``ChatRequest.params``: the OpenAI-compatible client sends it
as-is next to ``model`` and ``messages``. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from llmops.domain.models.app import ModelParams

#: Our field name -> OpenAI's request field, for the parameters that are plain values.
_SCALARS: tuple[tuple[str, str], ...] = (
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("max_tokens", "max_tokens"),
    ("presence_penalty", "presence_penalty"),
    ("frequency_penalty", "frequency_penalty"),
    ("seed", "seed"),
)


def openai_params(params: ModelParams) -> dict[str, Any]:
    """The chat-completions request fields for ``params``; unset parameters are left out.

    ``stop`` is sent only when non-empty, ``response_format`` as ``{"type": ...}``, and
    ``extra_body`` is merged last, verbatim, so it may add provider-specific fields (e.g.
    ``top_k`` for vLLM) or override any of the mapped ones.
    """
    body: dict[str, Any] = {}
    for ours, theirs in _SCALARS:
        value = getattr(params, ours)
        if value is not None:
            body[theirs] = value
    if params.stop:
        body["stop"] = list(params.stop)
    if params.response_format is not None:
        body["response_format"] = {"type": params.response_format}
    body.update(params.extra_body)
    return body
