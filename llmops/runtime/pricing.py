"""Token prices and the cost of a reply; called by whoever builds a model provider.

The OpenAI-compatible client (``llmops.adapters``) cannot import the runtime, so it takes
a ``pricer`` callable: pass a :class:`PriceTable` (built-in prices plus the manifests'
``spec.model.pricing`` overrides). Pure: no I/O.

Built-in prices are USD per 1M tokens as published by the vendors in 2025; they go stale,
so a manifest's ``pricing`` always wins. A model found nowhere costs 0 and is reported as
*unknown* (``Cost.known`` is False) so reports can say "cost unknown" instead of "$0".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from llmops.domain.chat import Usage
from llmops.domain.models.app import Pricing


@dataclass(frozen=True, slots=True)
class Price:
    """USD per one million prompt (input) and completion (output) tokens."""

    input_per_million: float
    output_per_million: float


#: Built-in prices, keyed by the canonical model name (lower case, no vendor prefix).
BUILTIN_PRICES: Mapping[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "o3-mini": Price(1.10, 4.40),
    "claude-3-5-sonnet": Price(3.00, 15.00),
    "claude-3-5-haiku": Price(0.80, 4.00),
    "llama-3.1-8b": Price(0.05, 0.08),
    "llama-3.1-70b": Price(0.59, 0.79),
    "text-embedding-3-small": Price(0.02, 0.0),
    "text-embedding-3-large": Price(0.13, 0.0),
    "stub": Price(0.0, 0.0),
}

#: Other spellings of the same models (Ollama tags, Hugging Face ids without the org).
ALIASES: Mapping[str, str] = {
    "llama3.1:8b": "llama-3.1-8b",
    "llama3.1:70b": "llama-3.1-70b",
    "meta-llama-3.1-8b": "llama-3.1-8b",
    "meta-llama-3.1-70b": "llama-3.1-70b",
}

CostSource = Literal["override", "builtin", "unknown"]


@dataclass(frozen=True, slots=True)
class Cost:
    """The cost of some tokens, and whether a price was known at all."""

    usd: float
    known: bool
    source: CostSource
    price: Price | None = None


def canonical_model(model: str) -> str:
    """``model`` lower-cased, without a vendor prefix (``openai/``, ``meta-llama/``)."""
    return model.strip().lower().rsplit("/", 1)[-1]


@functools.lru_cache(maxsize=256)
def builtin_price(model: str) -> Price | None:
    """The built-in price of ``model``, matching dated or suffixed names by their base.

    ``gpt-4o-2024-08-06`` is priced as ``gpt-4o`` and ``gpt-4o-mini-2024-07-18`` as
    ``gpt-4o-mini``: the longest table entry that the name starts with, followed by the
    end of the name or one of ``-``, ``:``, ``@``.
    """
    name = canonical_model(model)
    name = ALIASES.get(name, name)
    best: str | None = None
    for key in (*BUILTIN_PRICES, *ALIASES):
        if (name == key or re.match(re.escape(key) + r"[-:@]", name)) and (
            best is None or len(key) > len(best)
        ):
            best = key
    if best is None:
        return None
    return BUILTIN_PRICES[ALIASES.get(best, best)]


def cost_usd(model: str, usage: Usage, pricing_override: Pricing | None = None) -> Cost:
    """What ``usage`` of ``model`` costs: the override's prices, else the built-in table."""
    if pricing_override is not None:
        price = Price(pricing_override.input_per_million, pricing_override.output_per_million)
        source: CostSource = "override"
    else:
        found = builtin_price(model)
        if found is None:
            return Cost(usd=0.0, known=False, source="unknown")
        price, source = found, "builtin"
    usd = (
        usage.prompt_tokens * price.input_per_million
        + usage.completion_tokens * price.output_per_million
    ) / 1_000_000
    return Cost(usd=round(usd, 10), known=True, source=source, price=price)


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Built-in prices plus per-model overrides; a ``pricer`` for the model client.

    ``overrides`` maps a model name exactly as written in the manifest (``spec.model.name``)
    to its ``spec.model.pricing``.
    """

    overrides: Mapping[str, Pricing] = field(default_factory=dict)
    #: each model's (input, output) USD per 1M tokens as :func:`cost_usd` finds them
    #: (None: unknown), remembered: the client prices every reply
    _rates: dict[str, tuple[float, float] | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def cost(self, model: str, usage: Usage) -> Cost:
        """The cost of ``usage``, with whether the price was known."""
        return cost_usd(model, usage, self.overrides.get(model))

    def __call__(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for these token counts (0 for an unknown model); the client's ``pricer``:
        what :meth:`cost` says, with the model's prices looked up once."""
        try:
            rates = self._rates[model]
        except KeyError:
            price = self.cost(model, Usage(0, 0)).price
            rates = None if price is None else (price.input_per_million, price.output_per_million)
            if len(self._rates) < 256:
                self._rates[model] = rates
        if rates is None:
            return 0.0
        usd = (prompt_tokens * rates[0] + completion_tokens * rates[1]) / 1_000_000
        return round(usd, 10)
