"""Parsing OpenAI-compatible replies: what is accepted and how a bad reply is described."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmops.adapters.openai_wire import (
    Reply,
    WireError,
    _checked_reply,
    _plain_reply,
    chat_body,
    error_text,
    parse_chunk,
    parse_embeddings,
    parse_reply,
    quote,
    redact,
    reply_fields,
)
from llmops.domain.chat import ChatMessage, ChatRequest


def reply(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_chat_body_puts_params_under_model_messages_and_stream() -> None:
    request = ChatRequest(
        base_url="http://127.0.0.1:1/v1",
        model="m",
        messages=(ChatMessage("system", "s"), ChatMessage("user", "u")),
        params={"temperature": 0.1, "model": "ignored", "stream": True},
    )
    body = chat_body(request, stream=False)
    assert body == {
        "temperature": 0.1,
        "model": "m",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
    }
    streamed = chat_body(request, stream=True)
    assert streamed["stream"] is True and streamed["stream_options"] == {"include_usage": True}


def test_parse_reply() -> None:
    parsed = parse_reply(
        reply(
            model="gpt-4o-2024-08-06",
            choices=[{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            usage={"prompt_tokens": 3, "completion_tokens": 1},
        )
    )
    assert (parsed.content, parsed.finish_reason) == ("hi", "stop")
    assert parsed.model == "gpt-4o-2024-08-06"
    assert (parsed.prompt_tokens, parsed.completion_tokens) == (3, 1)


def test_null_content_and_missing_usage_are_tolerated() -> None:
    parsed = parse_reply(reply(choices=[{"message": {"content": None}}]))
    assert (parsed.content, parsed.prompt_tokens, parsed.finish_reason) == ("", 0, None)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"choices": [', "not valid JSON"),
        (b"", "not valid JSON (Expecting value"),
        (b"[1, 2]", "not an object"),
        (reply(id="x"), "has no choices"),
        (reply(choices=[]), "has no choices"),
        (reply(error={"message": "overloaded"}), "error instead of choices: overloaded"),
        (reply(choices=[{"text": "legacy"}]), "has no message"),
        (reply(choices=[{"message": {"content": 5}}]), "content is int"),
    ],
)
def test_bad_replies_say_what_is_wrong(body: bytes, says: str) -> None:
    with pytest.raises(WireError, match=says.replace("(", r"\(")):
        parse_reply(body)


def test_parse_chunk() -> None:
    chunk = parse_chunk(json.dumps({"choices": [{"delta": {"content": "he"}}], "model": "m"}))
    assert (chunk.delta, chunk.model, chunk.prompt_tokens) == ("he", "m", None)
    counts = {"prompt_tokens": 2, "completion_tokens": 5}
    usage = parse_chunk(json.dumps({"choices": [], "usage": counts}))
    assert (usage.delta, usage.prompt_tokens, usage.completion_tokens) == ("", 2, 5)
    with pytest.raises(WireError, match="not valid JSON"):
        parse_chunk('{"choices": [')
    with pytest.raises(WireError, match="carries an error: boom"):
        parse_chunk(json.dumps({"error": {"message": "boom"}}))


def test_parse_embeddings_orders_by_index_and_checks_the_count() -> None:
    body = reply(data=[{"index": 1, "embedding": [0, 1]}, {"index": 0, "embedding": [1.5, 0]}])
    assert parse_embeddings(body, 2) == [[1.5, 0.0], [0.0, 1.0]]
    with pytest.raises(WireError, match="1 vectors for 2 inputs"):
        parse_embeddings(reply(data=[{"index": 0, "embedding": [1]}]), 2)
    with pytest.raises(WireError, match="repeated index"):
        parse_embeddings(reply(data=[{"index": 0, "embedding": [1]}] * 2), 2)
    with pytest.raises(WireError, match="not a list of numbers"):
        parse_embeddings(reply(data=[{"index": 0, "embedding": "x"}]), 1)


def test_error_text_prefers_the_providers_message_and_truncates() -> None:
    assert error_text(reply(error={"message": "bad  model\nname"})) == "bad model name"
    assert error_text(b"<html>Bad Gateway</html>") == "<html>Bad Gateway</html>"
    assert error_text(b"") == "(empty body)"
    assert len(error_text(reply(error={"message": "x" * 5000}))) == 300
    assert quote("abcdef", 4) == "abc…"


def test_redact_removes_the_key_and_key_shaped_tokens() -> None:
    assert redact("key=abc123 and abc123", "abc123") == "key=[redacted] and [redacted]"
    assert "sk-" not in redact("Incorrect API key provided: sk-proj-****abcd.", None)


ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**70) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=4,
)
COUNT = st.integers(0, 10**6)
TOKENS = st.one_of(COUNT, COUNT, COUNT, st.integers(-2, 2**70), st.booleans(), st.text(max_size=2))
CONTENT = st.one_of(st.text(max_size=10), st.text(max_size=10), ANY_JSON)
CHOICE = st.fixed_dictionaries(
    {"message": st.one_of(st.fixed_dictionaries({"content": CONTENT}), ANY_JSON)},
    optional={"finish_reason": st.one_of(st.just("stop"), ANY_JSON)},
)
USAGE = st.fixed_dictionaries({"prompt_tokens": TOKENS, "completion_tokens": TOKENS})
REPLY = st.fixed_dictionaries(
    {
        "choices": st.one_of(st.lists(CHOICE, min_size=1, max_size=2), ANY_JSON),
        "usage": st.one_of(USAGE, USAGE, ANY_JSON),
    },
    optional={"model": st.one_of(st.just("stub"), ANY_JSON), "error": ANY_JSON},
)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        REPLY.map(lambda d: json.dumps(d).encode()),
        st.dictionaries(st.sampled_from(["choices", "usage", "model"]), ANY_JSON).map(
            lambda d: json.dumps(d).encode()
        ),
        st.binary(max_size=30),
    )
)
def test_the_plain_reply_fast_path_reads_what_the_checked_path_reads(body: bytes) -> None:
    fast = _plain_reply(body)
    if fast is None:
        return
    assert Reply(*fast) == _checked_reply(body)
    assert parse_reply(body) == Reply(*fast)
    assert reply_fields(body) == fast


def test_the_usual_reply_takes_the_fast_path() -> None:
    body = json.dumps(
        {
            "model": "stub",
            "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        }
    ).encode()
    fast = _plain_reply(body)
    assert fast == ("hi", "stop", "stub", 3, 1) == reply_fields(body)
    assert Reply(*fast) == _checked_reply(body) == parse_reply(body)
    assert _plain_reply(body.replace(b'"prompt_tokens": 3', b'"prompt_tokens": true')) is None


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        # no usage, content null, odd finish_reason and model: the checked path reads them
        (b'{"choices": [{"message": {"content": null}, "finish_reason": 1}], "model": 2}',
         ("", None, None, 0, 0)),
        (b'{"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": true}}',
         ("x", None, None, 0, 0)),
        # a str where the list of choices goes has a first item, which is not a choice
        (b'{"choices": "abc", "usage": {"prompt_tokens": 1, "completion_tokens": 2}}', None),
    ],
)
def test_reply_fields_falls_back_to_the_checked_path(
    body: bytes, fields: tuple[object, ...] | None
) -> None:
    assert _plain_reply(body) is None
    if fields is None:
        with pytest.raises(WireError, match="has no choices"):
            reply_fields(body)
    else:
        assert reply_fields(body) == fields
        assert parse_reply(body) == Reply(*fields)


def test_integers_over_64_bits_read_as_the_standard_library_reads_them() -> None:
    """The fast path parses with orjson without jsoncodec's long-integer guard: a huge
    integer elsewhere in the reply changes nothing; one in a token count (orjson: a
    float) sends the reply to the checked path, which keeps it an int."""
    usual = {"model": "m", "created": 2**70, "choices": [{"message": {"content": "x"}}]}
    body = json.dumps({**usual, "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
    assert _plain_reply(body.encode()) == ("x", None, "m", 1, 2) == reply_fields(body.encode())
    huge = json.dumps({**usual, "usage": {"prompt_tokens": 2**64, "completion_tokens": 2}})
    assert _plain_reply(huge.encode()) is None
    assert reply_fields(huge.encode()) == ("x", None, "m", 2**64, 2)
