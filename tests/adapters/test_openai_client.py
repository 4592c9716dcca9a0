"""OpenAIClient against the real stub model over loopback HTTP: replies, params, usage and
cost, streaming, embeddings, retries and their timing, permanent errors, and the API key
never leaking into an error, a traceback or a log line. Raw loopback servers cover what the
stub does not do: slow or cut-off bodies, odd statuses, proxies, the exact bytes sent; and
one client is used from several event loops."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
import traceback
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
import uvloop

from llmops import __version__
from llmops.adapters.openai_client import OpenAIClient
from llmops.domain.chat import ChatMessage, ChatRequest
from llmops.domain.errors import ExternalError, Permanent, Retryable
from llmops.domain.models.app import ModelParams
from llmops.runtime.params import openai_params
from llmops.runtime.pricing import PriceTable
from llmops.stub.config import FaultKind, StubConfig
from llmops.stub.rules import Rule
from llmops.stub.runner import StubServer
from llmops.stub.text import cosine

T = TypeVar("T")
KEY = "sk-llmops-test-" + "S3CR3T" * 4


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def fast_client(**kwargs: Any) -> OpenAIClient:
    """A client whose backoff is a few milliseconds, so retry tests run fast."""
    return OpenAIClient(backoff_base=0.005, backoff_cap=0.02, seed=0, **kwargs)


def chat(base_url: str, text: str = "hello stub world", **fields: Any) -> ChatRequest:
    fields.setdefault("timeout_seconds", 5.0)
    messages = (ChatMessage("system", "be brief"), ChatMessage("user", text))
    return ChatRequest(
        base_url=base_url, model=fields.pop("model", "stub"), messages=messages, **fields
    )


@contextmanager
def stub(*script: FaultKind | None, **config: Any) -> Iterator[StubServer]:
    with StubServer(StubConfig(fault_script=tuple(script), **config)) as server:
        yield server


@pytest.fixture(scope="module")
def shared() -> Iterator[StubServer]:
    """One stub for the module; tests script the faults they need."""
    with StubServer(StubConfig(retry_after_seconds=1, hang_seconds=5)) as server:
        yield server


@pytest.fixture
def server(shared: StubServer) -> StubServer:
    shared.reset()
    return shared


def chat_requests(server: StubServer) -> int:
    return int(server.stats()["requests"].get("/v1/chat/completions", 0))


# -- plain replies ------------------------------------------------------------------------


def test_completion_usage_and_cost(server: StubServer) -> None:

    async def go() -> None:
        async with fast_client(pricer=PriceTable()) as client:
            reply = await client.complete(chat(server.url, "a b c", model="gpt-4o"))
        assert reply.content == "echo: a b c"
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 4)
        assert reply.usage.cost_usd == pytest.approx((5 * 2.50 + 4 * 10.00) / 1e6)
        assert (reply.model, reply.finish_reason, reply.retries) == ("gpt-4o", "stop", 0)
        assert reply.latency_ms > 0

    run(go())


def test_params_are_sent_with_openai_names_and_shape_the_reply() -> None:
    params = ModelParams.model_validate(
        {
            "temperature": 0.3,
            "topP": 0.8,
            "maxTokens": 3,
            "seed": 11,
            "stop": ["never"],
            "responseFormat": "json_object",
            "extraBody": {"top_k": 5},
        }
    )
    rules = (Rule.of("weather", "It is sunny and warm today in Stubville"),)
    with stub(rules=rules) as server:

        async def go() -> None:
            async with fast_client() as client:
                request = chat(server.url, "weather please", params=openai_params(params))
                reply = await client.complete(request)
            assert (reply.content, reply.finish_reason) == ("It is sunny", "length")

        run(go())
        sent = server.state.recent()[-1]["body"]
    assert sent["model"] == "stub"
    assert sent["messages"][-1] == {"role": "user", "content": "weather please"}
    assert {k: sent[k] for k in ("temperature", "top_p", "max_tokens", "seed", "top_k")} == {
        "temperature": 0.3,
        "top_p": 0.8,
        "max_tokens": 3,
        "seed": 11,
        "top_k": 5,
    }
    assert sent["stop"] == ["never"] and sent["response_format"] == {"type": "json_object"}
    assert "stream" not in sent


def test_unknown_model_costs_nothing_without_a_price(server: StubServer) -> None:

    async def go() -> float:
        async with fast_client(pricer=PriceTable()) as client:
            return (await client.complete(chat(server.url, model="my-finetune"))).usage.cost_usd

    assert run(go()) == 0.0


def test_one_pool_serves_a_hundred_concurrent_requests(server: StubServer) -> None:

    async def go() -> list[str]:
        async with fast_client(max_connections=100) as client:
            replies = await asyncio.gather(
                *(client.complete(chat(server.url, f"n{i}")) for i in range(100))
            )
        return [r.content for r in replies]

    assert run(go()) == [f"echo: n{i}" for i in range(100)]


# -- streaming and embeddings -------------------------------------------------------------


def test_streaming_yields_deltas_then_reports_usage(server: StubServer) -> None:

    async def go() -> None:
        async with fast_client(pricer=PriceTable()) as client:
            stream = client.stream(chat(server.url, "one two three", model="gpt-4o-mini"))
            deltas = [d async for d in stream]
        assert len(deltas) == 4 and "".join(deltas) == "echo: one two three"
        assert stream.usage is not None and stream.usage.completion_tokens == 4
        assert stream.usage.cost_usd == pytest.approx((5 * 0.15 + 4 * 0.60) / 1e6)
        assert (stream.finish_reason, stream.model, stream.retries) == ("stop", "gpt-4o-mini", 0)

    run(go())
    assert server.state.recent()[-1]["body"]["stream"] is True


def test_embeddings_are_deterministic_and_similar_texts_are_closer(server: StubServer) -> None:
    texts = ["refund my order please", "please refund my order", "the weather in Paris"]

    async def go() -> list[list[float]]:
        async with fast_client() as client:
            return await client.embed(server.url, "stub-embed", texts)

    first, second = run(go()), run(go())
    assert first == second and len(first) == 3 and all(len(v) == 64 for v in first)
    assert cosine(first[0], first[1]) > cosine(first[0], first[2])
    assert run(_embed_nothing()) == []


async def _embed_nothing() -> list[list[float]]:
    async with fast_client() as client:
        return await client.embed("http://127.0.0.1:9/v1", "stub", [])


# -- retries ------------------------------------------------------------------------------


def test_429_waits_at_least_retry_after_then_succeeds(server: StubServer) -> None:
    server.script_faults("429")

    async def go() -> tuple[float, int, str]:
        async with fast_client() as client:
            started = time.monotonic()
            reply = await client.complete(chat(server.url, "patience"))
            return time.monotonic() - started, reply.retries, reply.content

    waited, retries, content = run(go())
    assert (retries, content) == (1, "echo: patience")
    assert waited >= 1.0
    assert server.stats()["faults"] == {"429": 1}


def test_retry_after_is_capped(server: StubServer) -> None:
    server.script_faults("429")

    async def go() -> int:
        async with fast_client(retry_after_cap=0.05) as client:
            return (await client.complete(chat(server.url))).retries

    assert run(go()) == 1


def test_500s_are_retried_and_counted(server: StubServer) -> None:
    server.script_faults("500", "500")

    async def go() -> int:
        async with fast_client() as client:
            return (await client.complete(chat(server.url, max_retries=2))).retries

    assert run(go()) == 2
    assert chat_requests(server) == 3


def test_retries_run_out_with_an_error_that_says_what_happened(server: StubServer) -> None:
    server.script_faults("500", "500", "500")

    async def go() -> None:
        async with fast_client() as client:
            await client.complete(chat(server.url, max_retries=1))

    with pytest.raises(Retryable) as info:
        run(go())
    message = str(info.value)
    assert "500 Internal Server Error" in message and "llmops stub fault" in message
    assert "gave up after 1 retry" in message
    assert chat_requests(server) == 2


def test_a_400_is_permanent_at_once_with_the_providers_message(server: StubServer) -> None:

    async def go() -> None:
        async with fast_client() as client:
            await client.complete(ChatRequest(server.url, "stub", messages=(), max_retries=3))

    with pytest.raises(Permanent, match="400 Bad Request: 'messages' must be a non-empty list"):
        run(go())
    assert chat_requests(server) == 1


def test_a_wrong_key_is_permanent_with_a_hint() -> None:
    with stub(api_key="the-right-key") as server:

        async def go() -> None:
            async with fast_client() as client:
                await client.complete(chat(server.url, max_retries=3), api_key="a-wrong-key")

        with pytest.raises(Permanent, match=r"401 Unauthorized.*check the API key"):
            run(go())
        assert chat_requests(server) == 1


def test_timeouts_are_retried_then_reported(server: StubServer) -> None:
    server.script_faults("timeout", "timeout")

    async def go() -> None:
        async with fast_client() as client:
            await client.complete(chat(server.url, timeout_seconds=0.3, max_retries=1))

    with pytest.raises(Retryable, match=r"no reply .* within 0.3s \(timeout\); gave up after 1"):
        run(go())
    assert chat_requests(server) == 2


def test_a_timeout_then_success(server: StubServer) -> None:
    server.script_faults("timeout")

    async def go() -> int:
        async with fast_client() as client:
            return (await client.complete(chat(server.url, timeout_seconds=0.3))).retries

    assert run(go()) == 1


def test_connection_refused_is_retried_then_reported() -> None:
    server = StubServer().start()
    url = server.url
    server.stop()  # nothing listens there now

    async def go() -> None:
        async with fast_client() as client:
            await client.complete(chat(url, max_retries=2))

    with pytest.raises(
        Retryable, match=r"cannot reach .*ConnectionRefusedError.*gave up after 2 retries"
    ):
        run(go())


@pytest.mark.parametrize("fault", ["malformed", "truncate"])
def test_malformed_json_is_retried(server: StubServer, fault: FaultKind) -> None:
    server.script_faults(fault)

    async def go() -> tuple[int, str]:
        async with fast_client() as client:
            reply = await client.complete(chat(server.url, "fine"))
            return reply.retries, reply.content

    assert run(go()) == (1, "echo: fine")


def test_malformed_json_finally_says_so(server: StubServer) -> None:
    server.script_faults("malformed")

    async def go() -> None:
        async with fast_client() as client:
            await client.complete(chat(server.url, max_retries=0))

    with pytest.raises(Retryable, match=r"the reply is not valid JSON .*gave up after 0 retries"):
        run(go())


def test_a_reply_without_choices_is_retried_and_reported() -> None:
    bodies = [b'{"id": "x", "object": "chat.completion"}'] * 2

    async def go() -> None:
        async with CannedServer(bodies) as url, fast_client() as client:
            await client.complete(chat(url, max_retries=1))

    with pytest.raises(Retryable, match="the reply has no choices; gave up after 1 retry"):
        run(go())


def test_a_server_that_ignores_stream_true_still_streams_its_reply() -> None:
    whole = (
        b'{"model": "m", "choices": [{"message": {"content": "all at once"}, '
        b'"finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 3}}'
    )

    async def go() -> None:
        async with CannedServer([whole]) as url, fast_client() as client:
            stream = client.stream(chat(url))
            assert [d async for d in stream] == ["all at once"]
            assert stream.usage is not None and stream.usage.completion_tokens == 3
            assert (stream.model, stream.finish_reason) == ("m", "stop")

    run(go())


# -- streams that fail ----------------------------------------------------------------------


def test_a_truncated_stream_raises_after_its_deltas_and_is_not_retried(server: StubServer) -> None:
    server.script_faults("truncate")
    received: list[str] = []

    async def go() -> None:
        async with fast_client() as client:
            async for delta in client.stream(chat(server.url, "w1 w2 w3 w4 w5", max_retries=3)):
                received.append(delta)

    with pytest.raises(Retryable, match=r"ended before \[DONE\].*cannot be resumed"):
        run(go())
    assert received and "".join(received) != "echo: w1 w2 w3 w4 w5"
    assert chat_requests(server) == 1


def test_a_stream_failing_before_its_first_delta_is_retried(server: StubServer) -> None:
    server.script_faults("500", "truncate")

    async def go() -> tuple[str, int]:
        async with fast_client() as client:
            # "echo:" is one word, so the truncated stream ends before any content
            stream = client.stream(chat(server.url, "", max_retries=2))
            return "".join([d async for d in stream]), stream.retries

    assert run(go()) == ("echo: ", 2)


def test_a_stream_cut_off_mid_chunk() -> None:
    async def go() -> list[str]:
        received: list[str] = []
        async with AbruptStreamServer() as url, fast_client() as client:
            with pytest.raises(Retryable, match="was cut off after 1 chunks"):
                async for delta in client.stream(chat(url)):
                    received.append(delta)
        return received

    assert run(go()) == ["partial"]


def test_a_malformed_stream_chunk_is_reported(server: StubServer) -> None:
    server.script_faults("malformed")

    async def go() -> None:
        async with fast_client() as client:
            async for _ in client.stream(chat(server.url, "a b c d")):
                pass

    with pytest.raises(Retryable, match="a stream chunk is not valid JSON"):
        run(go())


def test_a_stream_stopped_early_releases_its_connection(server: StubServer) -> None:

    async def go() -> str:
        async with fast_client(max_connections=1) as client:
            for _ in range(3):
                async with client.stream(chat(server.url, "a b c")) as stream:
                    async for _delta in stream:
                        break
            return (await client.complete(chat(server.url, "after"))).content

    assert run(go()) == "echo: after"


# -- the API key --------------------------------------------------------------------------


def test_the_key_is_sent_as_a_bearer_token_only() -> None:
    with stub(api_key=KEY) as server:

        async def go() -> str:
            async with fast_client() as client:
                return (await client.complete(chat(server.url), api_key=KEY)).content

        assert run(go()).startswith("echo:")
        logged = server.state.recent()[-1]
        assert logged["authorized"] is True and KEY not in repr(logged)


def test_the_key_never_appears_in_errors_tracebacks_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    failures: list[BaseException] = []

    async def expect(call: Callable[[], Awaitable[Any]]) -> None:
        try:
            await call()
        except ExternalError as exc:
            failures.append(exc)
        else:
            raise AssertionError("expected an error")

    async def drain(client: OpenAIClient, request: ChatRequest) -> None:
        async for _ in client.stream(request, api_key=KEY):
            pass

    with (
        stub(api_key="another-key") as wrong,
        stub(
            "500", "500", "timeout", "malformed", "truncate", api_key=KEY, hang_seconds=5
        ) as faulty,
    ):
        refused = StubServer().start()
        refused_url = refused.url
        refused.stop()

        async def go() -> None:
            async with fast_client() as c:
                await expect(lambda: c.complete(chat(wrong.url), api_key=KEY))
                await expect(lambda: c.embed(wrong.url, "stub", ["x"], api_key=KEY))
                await expect(lambda: c.complete(chat(faulty.url, max_retries=1), api_key=KEY))
                await expect(
                    lambda: c.complete(chat(faulty.url, timeout_seconds=0.2, max_retries=0), KEY)
                )
                await expect(lambda: c.complete(chat(faulty.url, max_retries=0), api_key=KEY))
                await expect(lambda: drain(c, chat(faulty.url, "a b c d", max_retries=0)))
                await expect(lambda: c.complete(chat(refused_url, max_retries=1), api_key=KEY))
                await expect(lambda: c.complete(chat(faulty.url), api_key=KEY + "\n"))
                assert KEY not in repr(c)

        run(go())
    assert len(failures) == 8
    assert {type(f) for f in failures} == {Permanent, Retryable}
    for failure in failures:
        rendered = "".join(traceback.format_exception(failure))
        assert KEY not in rendered and KEY not in repr(failure), rendered
    assert "retry 1/1" in caplog.text  # the retries were logged...
    assert KEY not in caplog.text  # ...without the key


# -- loopback servers that misbehave in ways the stub does not ----------------------------


class CannedServer:
    """A raw HTTP/1.1 server on 127.0.0.1 answering each request with the next 200 body."""

    def __init__(self, bodies: list[bytes]) -> None:
        self.bodies = list(bodies)
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        body = self.bodies.pop(0)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()


class AbruptStreamServer(CannedServer):
    """Sends one SSE chunk of a chunked response, then drops the connection."""

    def __init__(self) -> None:
        super().__init__([])

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        event = b'data: {"choices": [{"delta": {"content": "partial"}}]}\n\n'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(event), event)
        )
        await writer.drain()
        writer.transport.abort()


Reply = Callable[[asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A loopback HTTP/1.1 server: request ``n`` is answered by ``replies[n]``, which
    writes whatever it likes; each request's head and body are kept in ``requests``."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[tuple[str, bytes]] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while self.replies:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                length = next(
                    (
                        int(line.split(":")[1])
                        for line in head.split("\r\n")
                        if line.lower().startswith("content-length:")
                    ),
                    0,
                )
                self.requests.append((head, await reader.readexactly(length)))
                await self.replies.pop(0)(writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()


def respond(
    body: bytes = b"", status: str = "200 OK", content_type: str = "application/json"
) -> Reply:
    async def reply(writer: asyncio.StreamWriter) -> None:
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    return reply


def completion(text: str) -> bytes:
    return json.dumps(
        {"model": "m", "choices": [{"message": {"content": text}, "finish_reason": "stop"}]}
    ).encode()


def sse_event(text: str) -> bytes:
    return b"data: %s\n\n" % json.dumps({"choices": [{"delta": {"content": text}}]}).encode()


def trickle(pieces: list[bytes], pause: float) -> Reply:
    """A chunked event stream, one piece every ``pause`` seconds, then [DONE]."""

    async def reply(writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for piece in [*pieces, b"data: [DONE]\n\n"]:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(pause)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    return reply


# -- event loops ---------------------------------------------------------------------------


def test_one_client_serves_successive_event_loops_and_leaks_nothing(
    server: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = fast_client()

    async def once() -> str:
        return (await client.complete(chat(server.url, "again"))).content

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run(once()) == "echo: again"  # the session of this loop closes with it
        assert run(once()) == "echo: again"
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            assert runner.run(once()) == "echo: again"
        run(client.aclose())
        assert run(_use_once_and_forget(server.url)) == "echo: x"
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert "Unclosed" not in caplog.text


async def _use_once_and_forget(url: str) -> str:
    """A call through a client that is never closed: its loop closes its session."""
    return (await OpenAIClient().complete(chat(url, "x"))).content


def test_event_loops_in_threads_share_one_client(server: StubServer) -> None:
    client = fast_client()
    results: list[str] = []

    def work(n: int) -> None:
        async def calls() -> list[str]:
            replies = [client.complete(chat(server.url, f"t{n} r{i}")) for i in range(5)]
            return [r.content for r in await asyncio.gather(*replies)]

        results.extend(asyncio.run(calls()))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == sorted(f"echo: t{n} r{i}" for n in range(4) for i in range(5))
    run(client.aclose())


def test_a_closed_client_refuses_calls(server: StubServer) -> None:
    async def go() -> None:
        client = fast_client()
        await client.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await client.complete(chat(server.url))
        with pytest.raises(RuntimeError, match="closed"):
            async with client:
                pass

    run(go())


# -- timeouts and cut-off bodies -----------------------------------------------------------


def test_a_slow_stream_is_fine_while_each_piece_comes_in_time() -> None:
    pieces = [sse_event(f"w{i} ") for i in range(8)]

    async def go() -> str:
        async with RawServer(trickle(pieces, 0.08)) as url, fast_client() as client:
            stream = client.stream(chat(url, timeout_seconds=0.4, max_retries=0))
            return "".join([d async for d in stream])

    started = time.monotonic()
    assert run(go()) == "".join(f"w{i} " for i in range(8))
    assert time.monotonic() - started > 0.6  # longer than the timeout, in total


def test_a_stalled_stream_says_so() -> None:
    async def go() -> list[str]:
        received: list[str] = []
        async with RawServer(trickle([sse_event("first")], 2.0)) as url, fast_client() as c:
            with pytest.raises(Retryable, match=r"stalled: no data within 0.3s after 1 chunks"):
                async for delta in c.stream(chat(url, timeout_seconds=0.3)):
                    received.append(delta)
        return received

    assert run(go()) == ["first"]


def test_a_complete_must_finish_its_body_within_the_timeout() -> None:
    body = completion("slow")

    async def slow_body(writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:10])
        )
        await writer.drain()
        await asyncio.sleep(2)

    async def go() -> None:
        async with RawServer(slow_body) as url, fast_client() as client:
            await client.complete(chat(url, timeout_seconds=0.3, max_retries=0))

    with pytest.raises(Retryable, match=r"no reply to POST http://\S+ within 0.3s \(timeout\)"):
        run(go())


@pytest.mark.parametrize("cut", ["hang up", "short body"])
def test_a_reply_cut_short_is_retried(cut: str) -> None:
    async def broken(writer: asyncio.StreamWriter) -> None:
        if cut == "short body":
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"cho')
            await writer.drain()
        writer.transport.abort()

    async def go() -> tuple[str, int]:
        replies = RawServer(broken, respond(completion("second time")))
        async with replies as url, fast_client() as client:
            reply = await client.complete(chat(url, max_retries=1))
        return reply.content, reply.retries

    assert run(go()) == ("second time", 1)


def test_a_status_without_a_standard_phrase_shows_the_servers_own() -> None:
    async def go() -> None:
        overloaded = respond(b'{"error": {"message": "busy"}}', "529 Site Overloaded")
        async with RawServer(overloaded) as url, fast_client() as client:
            await client.complete(chat(url, max_retries=0))

    with pytest.raises(Retryable, match=r"answered 529 Site Overloaded: busy; gave up after 0"):
        run(go())


# -- what is sent ---------------------------------------------------------------------------


def test_the_request_is_compact_utf8_json_with_our_headers() -> None:
    raw = RawServer(respond(completion("ok")))

    async def go() -> None:
        async with raw as url, fast_client() as client:
            request = chat(url, "café ✓", params={"temperature": 0.5})
            assert (await client.complete(request, api_key=KEY)).content == "ok"

    run(go())
    head, body = raw.requests[0]
    assert head.startswith("POST /v1/chat/completions HTTP/1.1\r\n")
    headers = {
        k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head.split("\r\n")[1:-2])
    }
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["content-type"] == "application/json"
    assert headers["accept"] == "application/json"
    assert headers["user-agent"] == f"llmops/{__version__}"
    expected = {
        "temperature": 0.5,
        "model": "stub",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "café ✓"},
        ],
    }
    assert body == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("base_url", "says"),
    [
        ("localhost:8000/v1", "must start with http:// or https://"),
        ("ftp://127.0.0.1/v1", "must start with http:// or https://"),
        ("http:///v1", "must start with http:// or https://"),
    ],
)
def test_an_unusable_base_url_is_permanent(base_url: str, says: str) -> None:
    async def go() -> None:
        async with fast_client() as client:
            await client.complete(chat(base_url, max_retries=3))

    with pytest.raises(Permanent, match=says):
        run(go())


def test_credentials_in_the_base_url_never_show() -> None:
    refused = StubServer().start()
    url = refused.url.replace("http://", "http://user:hunter2@")
    refused.stop()

    async def go() -> None:
        async with fast_client() as client:
            await client.complete(chat(url, max_retries=0))

    with pytest.raises(Retryable) as info:
        run(go())
    assert "cannot reach the server for POST http://127.0.0.1:" in str(info.value)
    assert "hunter2" not in "".join(traceback.format_exception(info.value))


def test_a_parameter_that_is_not_json_is_permanent() -> None:
    async def go() -> None:
        async with fast_client() as client:
            await client.complete(chat("http://127.0.0.1:9/v1", params={"x": float("nan")}))

    with pytest.raises(Permanent, match="not valid JSON"):
        run(go())


# -- proxies from the environment ----------------------------------------------------------


def test_the_environment_proxy_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = RawServer(respond(completion("via proxy")))

    async def go() -> str:
        async with proxy as proxy_url:
            hostport = proxy_url.removeprefix("http://").removesuffix("/v1")
            monkeypatch.setenv("HTTP_PROXY", f"http://pu:pp@{hostport}")
            async with fast_client() as client:  # reads the environment when built
                request = chat("http://model.invalid/v1", max_retries=0)
                return (await client.complete(request, api_key=KEY)).content

    assert run(go()) == "via proxy"
    head, _ = proxy.requests[0]
    assert head.startswith("POST http://model.invalid/v1/chat/completions HTTP/1.1\r\n")
    assert "Proxy-Authorization: Basic cHU6cHA=" in head  # pu:pp
    assert f"Authorization: Bearer {KEY}" in head


def test_no_proxy_exempts_hosts(server: StubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "example.com, 127.0.0.1")

    async def go() -> str:
        async with fast_client() as client:
            return (await client.complete(chat(server.url, "direct"))).content

    assert run(go()) == "echo: direct"


def test_an_https_request_tunnels_through_the_proxy_with_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = RawServer(respond(b"no", "403 Forbidden", "text/plain"))

    async def go() -> None:
        async with proxy as proxy_url:
            hostport = proxy_url.removeprefix("http://").removesuffix("/v1")
            monkeypatch.setenv("HTTPS_PROXY", f"http://pu:proxy-secret@{hostport}")
            async with fast_client() as client:
                await client.complete(chat("https://model.invalid/v1", max_retries=0), KEY)

    with pytest.raises(Retryable, match="cannot reach the server for POST https://model") as info:
        run(go())
    head, _ = proxy.requests[0]
    assert head.startswith("CONNECT model.invalid:443 HTTP/1.1\r\n")
    assert "Proxy-Authorization: Basic cHU6cHJveHktc2VjcmV0" in head  # pu:proxy-secret
    assert KEY not in head  # the key only travels inside the tunnel
    rendered = "".join(traceback.format_exception(info.value))
    assert "proxy-secret" not in rendered and KEY not in rendered


def test_a_connection_pooled_by_a_stream_serves_later_calls(server: StubServer) -> None:
    """A stream's per-read timeout ends with the stream: the connection it returns to the
    pool serves the next call even after that timeout has passed."""

    async def go() -> list[int]:
        retries = []
        async with fast_client(max_connections=1) as client:
            for _ in range(2):
                stream = client.stream(chat(server.url, "a b", timeout_seconds=0.2))
                assert "".join([d async for d in stream]) == "echo: a b"
                await asyncio.sleep(0.4)  # longer than the stream's read timeout
                reply = await client.complete(chat(server.url, "after", timeout_seconds=2))
                retries.append(reply.retries)
        return retries

    assert run(go()) == [0, 0]
