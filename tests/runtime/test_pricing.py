"""Prices per million tokens, name matching, overrides, and the unknown-model flag."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmops.domain.chat import Usage
from llmops.domain.models.app import Pricing
from llmops.runtime.pricing import BUILTIN_PRICES, PriceTable, builtin_price, cost_usd


def test_builtin_price_of_a_known_model() -> None:
    cost = cost_usd("gpt-4o-mini", Usage(prompt_tokens=1_000_000, completion_tokens=500_000))
    assert cost.known and cost.source == "builtin"
    assert cost.usd == pytest.approx(0.15 + 0.30)


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("GPT-4.1-mini", "gpt-4.1-mini"),
        ("gpt-4.1-nano", "gpt-4.1-nano"),
        ("openai/gpt-4.1", "gpt-4.1"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"),
        ("llama3.1:8b", "llama-3.1-8b"),
        ("o3-mini", "o3-mini"),
        ("stub", "stub"),
    ],
)
def test_names_match_their_base_model(name: str, base: str) -> None:
    assert builtin_price(name) == BUILTIN_PRICES[base]


@pytest.mark.parametrize("name", ["gpt-4", "gpt-4omni", "my-finetune", "o3", "stubby", ""])
def test_unmatched_names_have_no_price(name: str) -> None:
    assert builtin_price(name) is None


def test_unknown_model_costs_zero_and_says_so() -> None:
    cost = cost_usd("my-finetune", Usage(10, 10))
    assert (cost.usd, cost.known, cost.source, cost.price) == (0.0, False, "unknown", None)


def test_the_stub_is_free_but_known() -> None:
    cost = cost_usd("stub", Usage(1000, 1000))
    assert cost.usd == 0.0 and cost.known


def test_override_wins_over_the_builtin_table_and_prices_unknown_models() -> None:
    override = Pricing.model_validate({"inputPerMillion": 1.0, "outputPerMillion": 2.0})
    assert cost_usd("gpt-4o", Usage(1_000_000, 1_000_000), override).usd == pytest.approx(3.0)
    cost = cost_usd("my-finetune", Usage(500_000, 0), override)
    assert cost.known and cost.source == "override" and cost.usd == pytest.approx(0.5)


def test_price_table_is_a_pricer_keyed_by_the_manifest_model_name() -> None:
    override = Pricing.model_validate({"inputPerMillion": 4.0, "outputPerMillion": 0.0})
    table = PriceTable({"my-finetune": override})
    assert table("my-finetune", 250_000, 99) == pytest.approx(1.0)
    assert table("gpt-4o", 1_000_000, 0) == pytest.approx(2.5)
    assert table("nobody-knows", 1_000_000, 1_000_000) == 0.0
    assert not table.cost("nobody-knows", Usage(1, 1)).known


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["gpt-4o", "gpt-4o-mini-2024-07-18", "openai/gpt-4.1", "stub", "mine", "x"]),
    st.integers(0, 10**7),
    st.integers(0, 10**7),
)
def test_the_pricer_says_what_cost_says(model: str, prompt: int, completion: int) -> None:
    table = PriceTable({"mine": Pricing(inputPerMillion=1.5, outputPerMillion=2.25)})
    expected = table.cost(model, Usage(prompt, completion)).usd
    assert table(model, prompt, completion) == expected
    assert table(model, prompt, completion) == expected, "the remembered prices too"
