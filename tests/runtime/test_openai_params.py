"""openai_params maps our camelCase manifest parameters to OpenAI's request fields."""

from __future__ import annotations

from llmops.domain.models.app import ModelParams
from llmops.runtime.params import openai_params


def test_every_parameter_maps_to_its_openai_name() -> None:
    params = ModelParams.model_validate(
        {
            "temperature": 0.2,
            "topP": 0.9,
            "maxTokens": 5,
            "presencePenalty": 0.1,
            "frequencyPenalty": -0.2,
            "seed": 7,
            "stop": ["END", "###"],
            "responseFormat": "json_object",
        }
    )
    assert openai_params(params) == {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 5,
        "presence_penalty": 0.1,
        "frequency_penalty": -0.2,
        "seed": 7,
        "stop": ["END", "###"],
        "response_format": {"type": "json_object"},
    }


def test_unset_parameters_are_left_out() -> None:
    assert openai_params(ModelParams()) == {}
    assert openai_params(ModelParams.model_validate({"temperature": 0})) == {"temperature": 0}


def test_extra_body_is_merged_verbatim_and_wins() -> None:
    params = ModelParams.model_validate(
        {"temperature": 0.5, "extraBody": {"top_k": 40, "temperature": 0.1, "nested": {"a": [1]}}}
    )
    assert openai_params(params) == {"temperature": 0.1, "top_k": 40, "nested": {"a": [1]}}
