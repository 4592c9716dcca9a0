"""The stub model over real loopback HTTP: OpenAI shapes, streaming, embeddings, faults
at their configured rates, stats, and the labels that say it is a stub."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmops.domain.errors import ExternalError, UsageError
from llmops.stub.config import FaultDice, StubConfig, parse_fault_kinds, spread_faults
from llmops.stub.rules import Rule
from llmops.stub.runner import StubServer
from llmops.stub.text import cosine, pieces

HELLO = {"model": "stub", "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    rules = (Rule.of(r"(?i)weather in (\w+)", "Sunny in {1}, as always."),)
    with StubServer(StubConfig(rules=rules, retry_after_seconds=2, hang_seconds=0.3)) as server:
        yield server


@pytest.fixture
def http(stub: StubServer) -> Iterator[httpx.Client]:
    stub.reset()
    with httpx.Client(base_url=stub.root_url, timeout=10) as client:
        yield client


def chat(http: httpx.Client, text: str, **fields: Any) -> httpx.Response:
    body = {"model": "stub", "messages": [{"role": "user", "content": text}], **fields}
    return http.post("/v1/chat/completions", json=body)


def sse_events(response: httpx.Response) -> list[str]:
    return [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]


# -- replies ------------------------------------------------------------------------------


def test_chat_completion_shape_and_labels(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json=HELLO)
    assert response.status_code == 200 and response.headers["x-llmops-stub"] == "true"
    body = response.json()
    assert body["object"] == "chat.completion" and body["system_fingerprint"] == "llmops-stub"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "echo: hello there"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


def test_rules_answer_before_the_echo(http: httpx.Client) -> None:
    reply = chat(http, "what's the weather in Lisbon?").json()
    assert reply["choices"][0]["message"]["content"] == "Sunny in Lisbon, as always."


def test_max_tokens_and_stop_shape_the_reply(http: httpx.Client) -> None:
    cut = chat(http, "a b c d e", max_tokens=3).json()["choices"][0]
    assert (cut["message"]["content"], cut["finish_reason"]) == ("echo: a b", "length")
    stopped = chat(http, "a b STOP c", stop=["STOP"]).json()["choices"][0]
    assert (stopped["message"]["content"], stopped["finish_reason"]) == ("echo: a b ", "stop")


def test_content_parts_are_read_as_text(http: httpx.Client) -> None:
    parts = [
        {"type": "text", "text": "from "},
        {"type": "image_url"},
        {"type": "text", "text": "parts"},
    ]
    body = {"messages": [{"role": "user", "content": parts}]}
    reply = http.post("/v1/chat/completions", json=body).json()
    assert reply["choices"][0]["message"]["content"] == "echo: from parts"
    assert reply["model"] == "stub"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("not json", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"messages": []}', "'messages' must be a non-empty list"),
        ('{"messages": [{"content": "x"}]}', "messages[0] must be an object with a 'role'"),
        ('{"messages": [{"role": "user", "content": 5}]}', "messages[0].content must be"),
    ],
)
def test_bad_requests_get_openai_style_400s(http: httpx.Client, body: str, says: str) -> None:
    response = http.post("/v1/chat/completions", content=body)
    assert response.status_code == 400 and response.headers["x-llmops-stub"] == "true"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and says in error["message"]


def test_streaming_sends_word_deltas_a_usage_chunk_and_done(http: httpx.Client) -> None:
    response = chat(http, "one two three", stream=True)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]]
    assert deltas[1:5] == ["echo:", " one", " two", " three"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4
    assert all(c["system_fingerprint"] == "llmops-stub" for c in chunks)


def test_pieces_rebuild_the_text() -> None:
    for text in ["", " ", "a", "echo: ", "  lead and trail  ", "x\ny\tz"]:
        assert "".join(pieces(text)) == text


# -- embeddings, models, health -----------------------------------------------------------


def test_embeddings_are_deterministic_unit_vectors_and_similar_texts_are_closer(
    http: httpx.Client,
) -> None:
    texts = ["reset my password", "how do I reset my password", "best pizza in Naples", ""]
    response = http.post("/v1/embeddings", json={"model": "stub", "input": texts})
    body = response.json()
    vectors = [item["embedding"] for item in sorted(body["data"], key=lambda i: i["index"])]
    assert len(vectors) == 4 and all(len(v) == 64 for v in vectors)
    assert all(
        math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, abs_tol=1e-6) for v in vectors[:3]
    )
    assert vectors[3] == [0.0] * 64
    assert cosine(vectors[0], vectors[1]) > 0.7 > cosine(vectors[0], vectors[2])
    again = http.post("/v1/embeddings", json={"input": "reset my password"}).json()
    assert again["data"][0]["embedding"] == vectors[0]
    assert body["usage"]["prompt_tokens"] == 3 + 6 + 4
    bad = http.post("/v1/embeddings", json={"input": [1, 2]})
    assert bad.status_code == 400


def test_models_and_healthz(http: httpx.Client) -> None:
    models = http.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["stub"]
    health = http.get("/healthz")
    assert health.json()["stub"] is True and health.headers["x-llmops-stub"] == "true"
    assert http.get("/no/such/path").headers["x-llmops-stub"] == "true"


def test_startup_says_it_is_not_a_real_llm(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="llmops.stub"), StubServer():
        pass
    assert "llmops stub model: NOT a real LLM" in caplog.text


def test_an_api_key_can_be_required() -> None:
    with StubServer(StubConfig(api_key="k-123")) as server, httpx.Client() as http:
        url = f"{server.url}/chat/completions"
        denied = http.post(url, json=HELLO)
        allowed = http.post(url, json=HELLO, headers={"Authorization": "Bearer k-123"})
        logged = server.state.recent()
    assert denied.status_code == 401 and "k-123" not in denied.text
    assert allowed.status_code == 200
    assert [r["authorized"] for r in logged] == [False, True]
    assert "k-123" not in repr(logged) and "k-123" not in repr(server.config)


# -- faults -------------------------------------------------------------------------------


def test_scripted_faults_have_their_documented_shapes(stub: StubServer, http: httpx.Client) -> None:
    stub.script_faults("429", "500", None, "malformed", "truncate", "truncate")
    limited = chat(http, "a")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert chat(http, "a").status_code == 500
    assert chat(http, "a").status_code == 200
    malformed = chat(http, "a")
    assert malformed.status_code == 200
    with pytest.raises(ValueError):
        malformed.json()
    with pytest.raises(ValueError):
        chat(http, "a").json()  # truncated JSON body
    events = sse_events(chat(http, "w1 w2 w3 w4", stream=True))
    assert "[DONE]" not in events and 1 < len(events) < 5
    assert stub.stats()["faults"] == {"429": 1, "500": 1, "malformed": 1, "truncate": 2}


def test_a_timeout_fault_hangs_longer_than_the_client_waits(
    stub: StubServer, http: httpx.Client
) -> None:
    stub.script_faults("timeout")
    with pytest.raises(httpx.ReadTimeout):
        http.post("/v1/chat/completions", json=HELLO, timeout=0.1)
    stub.script_faults("timeout")
    assert chat(http, "late").status_code == 200  # the hang is bounded (0.3 s here)


def test_a_malformed_stream_has_a_broken_chunk(stub: StubServer, http: httpx.Client) -> None:
    stub.script_faults("malformed")
    events = sse_events(chat(http, "a b c d", stream=True))
    assert events[-1] == "[DONE]"
    broken = 0
    for event in events[:-1]:
        try:
            json.loads(event)
        except ValueError:
            broken += 1
    assert broken == 1


def test_faults_happen_at_the_configured_rate() -> None:
    config = StubConfig(faults={"500": 0.2}, seed=7)
    with StubServer(config) as server, httpx.Client(base_url=server.root_url) as http:
        statuses = [http.post("/v1/chat/completions", json=HELLO).status_code for _ in range(500)]
        stats = server.stats()
        server.reset()
        again = [http.post("/v1/chat/completions", json=HELLO).status_code for _ in range(50)]
    failed = statuses.count(500)
    assert 75 <= failed <= 125  # 20% ± 5 points of 500 calls (about 2.8 standard deviations)
    assert set(statuses) == {200, 500}
    assert stats["faults"] == {"500": failed} and stats["total_faults"] == failed
    assert stats["requests"]["/v1/chat/completions"] == 500
    assert again == statuses[:50]  # the same seed replays the same faults


def test_fault_dice_split_a_total_rate_over_kinds() -> None:
    rates = spread_faults(0.5, parse_fault_kinds("429,500,timeout,malformed,truncate"))
    dice = FaultDice(StubConfig(faults=rates, seed=1))
    counts = Counter(dice.roll() for _ in range(20_000))
    assert abs(counts[None] / 20_000 - 0.5) < 0.02
    for kind in rates:
        assert abs(counts[kind] / 20_000 - 0.1) < 0.015


def test_bad_configuration_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown fault kind 'teapot'"):
        parse_fault_kinds("429,teapot")
    with pytest.raises(UsageError, match=r"add up to 1\.2"):
        StubConfig(faults={"429": 0.6, "500": 0.6})
    with pytest.raises(UsageError, match="latency_ms must be ≥ 0"):
        StubConfig(latency_ms=-1)
    assert spread_faults(0.0, ("429",)) == {}


# -- stats, reset, control ----------------------------------------------------------------


def test_stats_reset_and_the_request_log(http: httpx.Client) -> None:
    chat(http, "a")
    chat(http, "b", stream=True)
    http.post("/v1/embeddings", json={"input": "x"})
    stats = http.get("/stub/stats").json()
    assert stats["requests"] == {"/v1/chat/completions": 2, "/v1/embeddings": 1}
    assert (stats["streams"], stats["total_requests"], stats["faults"]) == (1, 3, {})
    logged = http.get("/stub/requests").json()["requests"]
    assert [r["endpoint"] for r in logged] == ["/v1/chat/completions"] * 2 + ["/v1/embeddings"]
    assert logged[0]["body"]["messages"][0]["content"] == "a"
    assert http.post("/stub/reset").json() == {"reset": True}
    assert http.get("/stub/stats").json()["total_requests"] == 0


def test_faults_can_be_scripted_over_http(http: httpx.Client) -> None:
    assert http.post("/stub/faults", json={"script": ["500", None]}).json() == {"scripted": 2}
    assert [chat(http, "x").status_code for _ in range(3)] == [500, 200, 200]
    bad = http.post("/stub/faults", json={"script": ["teapot"]})
    assert bad.status_code == 400 and "fault kinds" in bad.json()["error"]["message"]


def test_latency_and_jitter_delay_replies_without_changing_them() -> None:
    config = StubConfig(latency_ms=20, jitter_ms=20)
    with StubServer(config) as server, httpx.Client() as http:
        reply = http.post(f"{server.url}/chat/completions", json=HELLO).json()
    assert reply["choices"][0]["message"]["content"] == "echo: hello there"


def test_the_runner_reports_a_taken_port() -> None:
    with StubServer() as first:
        with pytest.raises(ExternalError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            StubServer(port=first.port).start()
        assert repr(first) == f"StubServer(url='{first.url}')"
