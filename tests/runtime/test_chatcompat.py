"""How OpenAI chat requests map to app inputs, and the shape of what goes back."""

from __future__ import annotations

from typing import Any

import pytest

from llmops.domain.chat import Usage
from llmops.domain.models.app import InputSpec
from llmops.runtime.chatcompat import (
    ChatRequestInvalid,
    chat_inputs,
    chunk,
    completion,
    parse_chat,
    primary_input,
)

DECLARED = {
    "question": InputSpec.model_validate({"type": "string"}),
    "tone": InputSpec.model_validate({"type": "string", "default": "friendly"}),
    "limit": InputSpec.model_validate({"type": "integer", "default": 3}),
}


def body(content: Any, **fields: Any) -> dict[str, Any]:
    return {"model": "demo", "messages": [{"role": "user", "content": content}], **fields}


def test_the_last_user_message_fills_the_primary_input() -> None:
    request = {
        "model": "demo",
        "messages": [
            {"role": "system", "content": "ignored: the app's prompt is the contract"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "reply"},
            {"role": "user", "content": "second"},
        ],
    }
    assert chat_inputs(parse_chat(request), DECLARED) == {"question": "second"}


def test_text_content_parts_are_joined() -> None:
    parts = [
        {"type": "text", "text": "hello "},
        {"type": "image_url", "image_url": {}},
        {"type": "text", "text": "you"},
    ]
    assert chat_inputs(parse_chat(body(parts)), DECLARED) == {"question": "hello you"}


def test_a_json_object_of_declared_inputs_is_the_inputs() -> None:
    call = parse_chat(body('{"question": "q", "limit": 2}'))
    assert chat_inputs(call, DECLARED) == {"question": "q", "limit": 2}


def test_json_with_other_keys_is_just_text() -> None:
    text = '{"order": 42}'
    assert chat_inputs(parse_chat(body(text)), DECLARED) == {"question": text}


def test_explicit_inputs_win() -> None:
    call = parse_chat(body("ignored", inputs={"question": "explicit"}))
    assert chat_inputs(call, DECLARED) == {"question": "explicit"}
    assert chat_inputs(parse_chat({"model": "demo", "messages": [], "inputs": {}}), DECLARED) == {}


def test_primary_input_rules() -> None:
    s = InputSpec.model_validate
    assert primary_input({"a": s({}), "b": s({"default": "x"})}) == "a"
    assert primary_input({"a": s({"required": False})}) == "a"
    assert primary_input({"a": s({}), "b": s({})}) is None
    assert primary_input({"n": s({"type": "integer"})}) is None


def test_apps_with_several_required_inputs_ask_for_json() -> None:
    two = {"a": InputSpec.model_validate({}), "b": InputSpec.model_validate({})}
    with pytest.raises(ChatRequestInvalid, match="takes several inputs"):
        chat_inputs(parse_chat(body("hi")), two)


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "", "messages": []}, "model"),
        ({"model": "demo"}, "messages"),
        ({"model": "demo", "messages": []}, "messages"),
        ({"model": "demo", "messages": "hi"}, "messages"),
        ({"model": "demo", "messages": [{"content": "x"}]}, "messages[0]"),
        ({"model": "demo", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0]"),
        ({"model": "demo", "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"model": "demo", "messages": [{"role": "user", "content": [3]}]}, "messages[0].content"),
        (body("x", stream="yes"), "stream"),
        (body("x", n=2), "n"),
        (body("x", stream_options=[]), "stream_options"),
    ],
)
def test_malformed_requests_name_the_field(request_body: dict[str, Any], param: str) -> None:
    with pytest.raises(ChatRequestInvalid) as caught:
        parse_chat(request_body)
    assert caught.value.param == param


def test_no_user_message() -> None:
    call = parse_chat({"model": "demo", "messages": [{"role": "system", "content": "s"}]})
    with pytest.raises(ChatRequestInvalid, match="no user message"):
        chat_inputs(call, DECLARED)


def test_response_shapes() -> None:
    usage = Usage(3, 4, 0.1)
    done = completion("rid", "demo", "hi", None, usage, "dev")
    assert done["id"] == "chatcmpl-rid" and done["object"] == "chat.completion"
    assert done["choices"][0]["message"] == {"role": "assistant", "content": "hi"}
    assert done["choices"][0]["finish_reason"] == "stop"
    assert done["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    piece = chunk("rid", "demo", 1, "dev", {"content": "x"})
    assert piece["object"] == "chat.completion.chunk" and piece["choices"][0]["delta"] == {
        "content": "x"
    }
    tail = chunk("rid", "demo", 1, "dev", None, usage=usage)
    assert tail["choices"] == [] and tail["usage"]["total_tokens"] == 7
