"""llmops' HTTP/1.1 client against real loopback sockets: small asyncio servers written
here for every edge case (framing, keep-alive, stale connections, limits, timeouts, the
pool limit, streams, TLS with a self-signed certificate, a forward proxy with CONNECT),
the stub model for the ordinary case, and a property test feeding the client arbitrary
bytes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gc
import os
import shutil
import ssl
import subprocess
import time
import urllib.parse
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.adapters.http1 import (
    ConnectFailed,
    ConnectionLost,
    Headers,
    HttpClient,
    HttpError,
    HttpTimeout,
    InvalidURL,
    ProtocolError,
    ProxyRefused,
    Response,
    TooLarge,
    _Body,
    _Connection,
    _parse_head,
    header_lines,
)
from llmops.stub.config import StubConfig
from llmops.stub.runner import StubServer

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def client(**kwargs: Any) -> HttpClient:
    kwargs.setdefault("proxies", {})
    return HttpClient(**kwargs)


# -- a scriptable loopback server -------------------------------------------------------


class Peer:
    """The server's side of one connection."""

    def __init__(
        self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.index = index  # which connection of the server this is (0, 1, ...)

    async def request(self) -> tuple[str, bytes] | None:
        """The next request (head, body), or None when the client closed."""
        try:
            head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        self.server.requests.append((self.index, head, body))
        return head, body

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def abort(self) -> None:
        self.writer.transport.abort()


Handler = Callable[[Peer], Awaitable[None]]


class Server:
    """A loopback TCP server: each connection runs ``handler``; counts connections, the
    ones open now and the most open at once, and keeps every request."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.connections = 0
        self.open = 0
        self.max_open = 0
        self.requests: list[tuple[int, str, bytes]] = []
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.handler(Peer(self, reader, writer, index))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:  # the server is closing
            pass
        finally:
            self.tasks.discard(task)
            self.open -= 1
            writer.close()

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def url(self, path: str = "/x", scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


def ok(body: bytes = b"hello", *headers: str, status: str = "200 OK") -> bytes:
    lines = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{lines}\r\n".encode() + body


def answering(*responses: bytes) -> Handler:
    """Each request (on any connection) gets the next response; the last one repeats."""
    left = list(responses)

    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            await peer.send(left.pop(0) if len(left) > 1 else left[0])

    return handler


def chunked(*pieces: bytes, trailers: bytes = b"", ext: bytes = b"") -> bytes:
    data = b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in pieces)
    return data + b"0\r\n" + trailers + b"\r\n"


async def get(http: HttpClient, url: str, **kwargs: Any) -> Response:
    return await http.request(
        http.endpoint(url), b"GET", None, timeout=kwargs.pop("timeout", 5), **kwargs
    )


# -- framing ------------------------------------------------------------------------------


def test_content_length_body_status_and_headers() -> None:
    response = ok(
        b'{"a": 1}',
        "Content-Type: application/json",
        "Set-Cookie: a=1",
        "set-cookie: b=2",
        "X-Empty:",
        "X-Spaced:   padded value  \t",
        status="201 Created",
    )

    async def go() -> Response:
        async with Server(answering(response)) as server, client() as http:
            return await get(http, server.url())

    reply = run(go())
    assert (reply.status, reply.reason, reply.body) == (201, "Created", b'{"a": 1}')
    assert reply.headers["content-type"] == reply.headers["CONTENT-TYPE"] == "application/json"
    assert reply.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert reply.headers["set-cookie"] == "a=1, b=2"
    assert reply.headers["x-empty"] == "" and reply.headers["X-Spaced"] == "padded value"
    assert "content-length" in reply.headers and reply.headers.get("missing") is None
    assert reply.trailers is None


def test_chunked_with_extensions_and_trailers_then_reuse() -> None:
    body = chunked(
        b"hel", b"lo ", b"world", ext=b";name=value; x", trailers=b"X-Sum: 42\r\nX-Two: 2\r\n"
    )
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body

    async def go() -> list[Response]:
        async with Server(answering(response)) as server, client() as http:
            replies = [await get(http, server.url()) for _ in range(3)]
            assert server.connections == 1
            return replies

    for reply in run(go()):
        assert reply.body == b"hello world"
        assert reply.trailers is not None and reply.trailers["x-sum"] == "42"
        assert reply.trailers.get("X-Two") == "2"


def test_a_body_trickling_in_byte_by_byte() -> None:
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"abc", b"defgh")

    async def trickle(peer: Peer) -> None:
        while await peer.request() is not None:
            for i in range(len(response)):
                await peer.send(response[i : i + 1])
                await asyncio.sleep(0.001)

    async def go() -> tuple[bytes, bytes, int]:
        async with Server(trickle) as server, client() as http:
            first = (await get(http, server.url())).body
            async with await http.open(http.endpoint(server.url()), b"GET", timeout=5) as stream:
                second = b"".join([piece async for piece in stream])
            return first, second, server.connections

    assert run(go()) == (b"abcdefgh", b"abcdefgh", 1)


def test_a_close_delimited_body_is_read_to_the_end_and_not_reused() -> None:
    async def close_delimited(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")

    async def go() -> tuple[list[bytes], int]:
        async with Server(close_delimited) as server, client() as http:
            bodies = [(await get(http, server.url())).body for _ in range(2)]
            return bodies, server.connections

    assert run(go()) == ([b"until the end"] * 2, 2)


@pytest.mark.parametrize(
    ("method", "status"),
    [(b"HEAD", "200 OK"), (b"GET", "204 No Content"), (b"GET", "304 Not Modified")],
)
def test_replies_without_a_body(method: bytes, status: str) -> None:
    # a Content-Length that is not followed by a body: the reply to HEAD, 204 and 304
    response = f"HTTP/1.1 {status}\r\nContent-Length: 50\r\n\r\n".encode()

    async def go() -> tuple[list[Response], int]:
        async with Server(answering(response)) as server, client() as http:
            endpoint = http.endpoint(server.url())
            replies = [await http.request(endpoint, method, None, timeout=5) for _ in range(3)]
            return replies, server.connections

    replies, connections = run(go())
    assert [r.body for r in replies] == [b""] * 3 and connections == 1


def test_interim_1xx_replies_are_skipped() -> None:
    response = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok(
        b"final"
    )

    async def go() -> Response:
        async with Server(answering(response)) as server, client() as http:
            return await get(http, server.url())

    reply = run(go())
    assert (reply.status, reply.body) == (200, b"final")


# -- keep-alive --------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection_and_sends_what_it_should() -> None:
    async def go() -> Server:
        async with Server(answering(ok())) as server:
            async with client(headers={"User-Agent": "t/1"}) as http:
                endpoint = http.endpoint(server.url("/v1/chat?q=1"))
                for i in range(5):
                    body = b"n%d" % i
                    reply = await http.request(
                        endpoint, b"POST", body, header_lines({"X-Key": "v"}), timeout=5
                    )
                    assert reply.body == b"hello"
            return server

    server = run(go())
    assert server.connections == 1 and len(server.requests) == 5
    _, head, body = server.requests[4]
    assert head.startswith("POST /v1/chat?q=1 HTTP/1.1\r\n")
    lines = head.split("\r\n")
    assert f"Host: 127.0.0.1:{server.port}" in lines and "User-Agent: t/1" in lines
    assert "X-Key: v" in lines and "Content-Length: 2" in lines and body == b"n4"


@pytest.mark.parametrize(
    "response",
    [
        ok(b"x", "Connection: close"),
        ok(b"x", "Connection: Keep-Alive, CLOSE"),
        b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
    ],
    ids=["close", "close-token", "http/1.0"],
)
def test_connection_close_is_honoured(response: bytes) -> None:
    async def go() -> int:
        async with Server(answering(response)) as server, client() as http:
            for _ in range(3):
                assert (await get(http, server.url())).body == b"x"
            return server.connections

    assert run(go()) == 3


def test_http10_keep_alive_is_reused() -> None:
    response = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx"

    async def go() -> int:
        async with Server(answering(response)) as server, client() as http:
            for _ in range(3):
                await get(http, server.url())
            return server.connections

    assert run(go()) == 1


def test_idle_connections_are_reused_last_in_first_out() -> None:
    async def by_delay(peer: Peer) -> None:
        while (request := await peer.request()) is not None:
            _, body = request
            await asyncio.sleep(float(body or b"0"))
            await peer.send(ok(b"conn%d" % peer.index))

    async def go() -> list[bytes]:
        async with Server(by_delay) as server, client() as http:
            endpoint = http.endpoint(server.url())
            # two connections at once; the one answered last is released last
            first = await asyncio.gather(
                http.request(endpoint, b"POST", b"0.05", timeout=5),
                http.request(endpoint, b"POST", b"0.3", timeout=5),
            )
            later = await http.request(endpoint, b"POST", b"0", timeout=5)
            return [r.body for r in first] + [later.body]

    (a, b, later) = run(go())
    assert {a, b} == {b"conn0", b"conn1"} and later == b  # the most recently released


def test_an_expired_idle_connection_is_not_reused() -> None:
    async def go() -> int:
        async with Server(answering(ok())) as server, client(keepalive_expiry=0.05) as http:
            await get(http, server.url())
            await asyncio.sleep(0.15)
            await get(http, server.url())
            return server.connections

    assert run(go()) == 2


def test_a_connection_the_server_closed_while_idle_is_dropped_quietly() -> None:
    async def one_then_close(peer: Peer) -> None:
        await peer.request()
        await peer.send(ok())  # keep-alive, but the server closes it right after

    async def go() -> tuple[int, int]:
        async with Server(one_then_close) as server, client() as http:
            await get(http, server.url())
            await asyncio.sleep(0.1)  # the client sees the close while the connection idles
            await get(http, server.url())
            return server.connections, len(server.requests)

    assert run(go()) == (2, 2)


# -- stale connections and retries -------------------------------------------------------


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_stale_pooled_connection_is_retried_once_on_a_fresh_one(how: str) -> None:
    async def stale_after_one(peer: Peer) -> None:
        if peer.index == 0:
            await peer.request()
            await peer.send(ok(b"first"))
            await peer.request()  # the second request arrives on a connection we drop
            if how == "reset":
                peer.abort()
            return
        while await peer.request() is not None:
            await peer.send(ok(b"fresh"))

    async def go() -> tuple[bytes, bytes, int, int]:
        async with Server(stale_after_one) as server, client() as http:
            endpoint = http.endpoint(server.url())
            first = await http.request(endpoint, b"POST", b"1", timeout=5)
            second = await http.request(endpoint, b"POST", b"2", timeout=5)
            return first.body, second.body, server.connections, len(server.requests)

    assert run(go()) == (b"first", b"fresh", 2, 3)


@pytest.mark.parametrize(
    "partial",
    [b"HTTP/1.1 200 OK\r\nContent-Le", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"],
)
def test_no_retry_once_a_response_byte_arrived(partial: bytes) -> None:
    async def partial_second(peer: Peer) -> None:
        await peer.request()
        await peer.send(ok(b"first"))
        await peer.request()
        await peer.send(partial)  # then the connection closes

    async def go() -> int:
        async with Server(partial_second) as server, client() as http:
            await get(http, server.url())
            with pytest.raises(ConnectionLost, match="closed by the server"):
                await get(http, server.url())
            return len(server.requests)

    assert run(go()) == 2


def test_a_fresh_connection_closed_before_the_reply_is_not_retried() -> None:
    async def hang_up(peer: Peer) -> None:
        await peer.request()

    async def go() -> int:
        async with Server(hang_up) as server, client() as http:
            with pytest.raises(ConnectionLost, match="before any byte of the response"):
                await get(http, server.url())
            return len(server.requests)

    assert run(go()) == 1


def test_nothing_listening_is_a_connect_failure() -> None:
    async def go() -> None:
        async with Server(answering(ok())) as server:
            url = server.url()
        async with client() as http:
            await get(http, url)

    with pytest.raises(
        ConnectFailed, match=r"cannot connect to http://127.0.0.1:\d+: ConnectionRefusedError"
    ) as info:
        run(go())
    assert isinstance(info.value.cause, ConnectionRefusedError)


# -- malformed replies and limits -----------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "says"),
    [
        (
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n",
            "obsolete header line folding",
        ),
        (b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", "bare CR or LF"),
        (b"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", "control characters"),
        (b"HTTP/2 200 OK\r\n\r\n", "does not start with an HTTP/1.x status line"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "does not start with an HTTP/1.x status line"),
        (b"ICY 200 OK\r\n\r\n", "does not start with an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx", "conflicting Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "transfer coding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", "malformed chunk size"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
            "longer than its size",
        ),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "switched protocols"),
    ],
)
def test_malformed_replies_are_protocol_errors(response: bytes, says: str) -> None:
    async def go() -> None:
        async with Server(answering(response)) as server, client() as http:
            await get(http, server.url())

    with pytest.raises(ProtocolError, match=says):
        run(go())


def test_the_same_content_length_twice_is_accepted() -> None:
    async def go() -> bytes:
        response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"
        async with Server(answering(response)) as server, client() as http:
            return (await get(http, server.url())).body

    assert run(go()) == b"ok"


def test_chunked_with_content_length_is_read_chunked_and_not_reused() -> None:
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked(b"ab")
    )

    async def go() -> tuple[bytes, int]:
        async with Server(answering(response)) as server, client() as http:
            body = (await get(http, server.url())).body
            await get(http, server.url())
            return body, server.connections

    assert run(go()) == (b"ab", 2)


@pytest.mark.parametrize(
    ("response", "says"),
    [
        (
            b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n",
            "head is over 65,536 bytes",
        ),
        (
            b"HTTP/1.1 200 OK\r\n" + b"X-Big: a\r\n" * 7_000,
            "head is over 65,536 bytes",
        ),  # never ends
        (ok(b"x" * 2000), r"body is over 1,000 bytes \(2,000\)"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunked(b"x" * 600, b"y" * 600),
            "body is over 1,000 bytes",
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n" + b"z" * 1500, "body is over 1,000 bytes"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1" + b";e" * 3000 + b"\r\n",
            "chunk-size line",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"X-T: a\r\n" * 9_000,
            "trailer section is over 65,536 bytes",
        ),
    ],
    ids=[
        "long-header",
        "endless-head",
        "content-length",
        "chunked",
        "close-delimited",
        "chunk-line",
        "trailers",
    ],
)
def test_limits_on_the_head_and_the_body(response: bytes, says: str) -> None:
    async def go() -> None:
        async with Server(answering(response)) as server, client(max_body_bytes=1000) as http:
            await get(http, server.url())

    with pytest.raises(TooLarge, match=says):
        run(go())


# -- timeouts ---------------------------------------------------------------------------


def test_a_slow_server_times_out_and_its_connection_is_not_reused() -> None:
    async def slow_first(peer: Peer) -> None:
        while await peer.request() is not None:
            if peer.index == 0:
                await asyncio.sleep(2)
            await peer.send(ok())

    async def go() -> tuple[float, int]:
        async with Server(slow_first) as server, client() as http:
            started = time.monotonic()
            with pytest.raises(HttpTimeout, match=r"no complete response within 0.2s") as info:
                await get(http, server.url(), timeout=0.2)
            waited = time.monotonic() - started
            assert isinstance(info.value, TimeoutError)
            assert (await get(http, server.url())).body == b"hello"
            return waited, server.connections

    waited, connections = run(go())
    assert 0.15 < waited < 1.5 and connections == 2


def test_a_stream_read_times_out_per_read() -> None:
    async def stall(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await asyncio.sleep(2)

    async def go() -> list[bytes]:
        got: list[bytes] = []
        async with Server(stall) as server, client() as http:
            stream = await http.open(http.endpoint(server.url()), b"GET", timeout=0.2)
            with pytest.raises(HttpTimeout, match=r"no data for 0\.2s"):
                async for piece in stream:
                    got.append(piece)
        return got

    assert run(go()) == [b"abc"]


def test_a_cancelled_request_frees_its_connection_slot() -> None:
    async def slow_first(peer: Peer) -> None:
        while await peer.request() is not None:
            if peer.index == 0:
                await asyncio.sleep(2)
            await peer.send(ok())

    async def go() -> tuple[bytes, int]:
        async with Server(slow_first) as server, client(max_connections=1) as http:
            task = asyncio.create_task(get(http, server.url()))
            await asyncio.sleep(0.1)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            reply = await get(http, server.url(), timeout=2)
            return reply.body, server.connections

    assert run(go()) == (b"hello", 2)


def test_a_cancellation_from_outside_is_not_taken_for_a_timeout() -> None:
    """The request's deadline cancels its task; a cancel that came from elsewhere, also
    one at the moment the deadline fires, stays a CancelledError, and the task's
    cancellation count is left as it was (as asyncio.timeout leaves it)."""

    async def silent(peer: Peer) -> None:
        await peer.request()
        await asyncio.sleep(2)

    async def go() -> tuple[int, int]:
        async with Server(silent) as server, client() as http:
            task = asyncio.create_task(get(http, server.url(), timeout=5))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            both = asyncio.create_task(get(http, server.url(), timeout=0.2))
            asyncio.get_running_loop().call_later(0.2, both.cancel)
            with pytest.raises(asyncio.CancelledError):
                await both
            timed_out = asyncio.create_task(get(http, server.url(), timeout=0.1))
            with pytest.raises(HttpTimeout):
                await timed_out
            return both.cancelling(), timed_out.cancelling()

    assert run(go()) == (1, 0)


# -- the pool limit ------------------------------------------------------------------------


def test_the_pool_never_opens_more_than_max_connections() -> None:
    async def slow(peer: Peer) -> None:
        while await peer.request() is not None:
            await asyncio.sleep(0.05)
            await peer.send(ok())

    async def go() -> Server:
        async with Server(slow) as server, client(max_connections=3) as http:
            endpoint = http.endpoint(server.url())
            replies = await asyncio.gather(
                *(http.request(endpoint, b"POST", b"%d" % i, timeout=5) for i in range(4))
            )
            assert [r.status for r in replies] == [200] * 4
            more = await asyncio.gather(
                *(http.request(endpoint, b"POST", b"x", timeout=5) for i in range(20))
            )
            assert len(more) == 20
            return server

    server = run(go())
    assert server.max_open == 3 and server.connections == 3 and len(server.requests) == 24


def test_waiters_are_served_first_come_first_served() -> None:
    async def slow(peer: Peer) -> None:
        while await peer.request() is not None:
            await asyncio.sleep(0.01)
            await peer.send(ok())

    async def go() -> list[bytes]:
        async with Server(slow) as server, client(max_connections=1) as http:
            endpoint = http.endpoint(server.url())
            calls = []
            for i in range(6):
                calls.append(
                    asyncio.create_task(http.request(endpoint, b"POST", b"%d" % i, timeout=5))
                )
                await asyncio.sleep(0)  # queue them in this order
            await asyncio.gather(*calls)
            assert server.connections == 1
            return [body for _, _, body in server.requests]

    assert run(go()) == [b"%d" % i for i in range(6)]


# -- streams -------------------------------------------------------------------------------


def _sse_stream(count: int, pause: float | None = None) -> Handler:
    """A chunked event stream of ``count`` events per request, ``pause`` seconds apart
    (None: as many seconds as the request body says)."""

    async def handler(peer: Peer) -> None:
        while (request := await peer.request()) is not None:
            wait = pause if pause is not None else float(request[1] or b"0")
            await peer.send(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            for i in range(count):
                event = b"data: %d\n\n" % i
                await peer.send(b"%x\r\n%s\r\n" % (len(event), event))
                await asyncio.sleep(wait)
            await peer.send(b"0\r\n\r\n")

    return handler


def test_a_stream_read_to_its_end_is_reused_and_one_stopped_early_is_not() -> None:
    async def go() -> tuple[list[bytes], int, int, bytes]:
        async with Server(_sse_stream(5)) as server, client() as http:
            endpoint = http.endpoint(server.url())
            async with await http.open(endpoint, b"POST", b"0.01", timeout=5) as stream:
                assert stream.status == 200
                assert stream.headers["content-type"] == "text/event-stream"
                pieces = [piece async for piece in stream]
            async with await http.open(endpoint, b"POST", b"0", timeout=5) as stream:
                assert (await stream.read()).count(b"data:") == 5
            after_whole = server.connections
            # stop early while the rest of the body is still on its way
            async with await http.open(endpoint, b"POST", b"0.3", timeout=5) as stream:
                async for _ in stream:
                    break
            async with await http.open(endpoint, b"POST", b"0", timeout=5) as stream:
                after = await stream.read()
            return pieces, after_whole, server.connections, after

    pieces, after_whole, connections, after = run(go())
    assert b"".join(pieces) == b"".join(b"data: %d\n\n" % i for i in range(5))
    assert after_whole == 1 and connections == 2
    assert after == b"".join(b"data: %d\n\n" % i for i in range(5))


def test_an_early_stopped_stream_closes_its_socket() -> None:
    async def part_then_watch(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                while await peer.reader.read(1024):
                    pass
                peer.server.requests.append((peer.index, "EOF", b""))

    async def go() -> list[str]:
        async with Server(part_then_watch) as server, client() as http:
            stream = await http.open(http.endpoint(server.url()), b"GET", timeout=5)
            assert await stream.__anext__() == b"x" * 10  # 90 more to come
            await stream.aclose()
            await asyncio.sleep(0.3)
            return [head for _, head, _ in server.requests]

    assert run(go())[-1] == "EOF"  # the server saw the client close the connection


def test_sse_through_the_stream_and_the_sse_decoder() -> None:
    from llmops.adapters.sse import LineSplitter, SSEDecoder

    async def go() -> list[str]:
        events: list[str] = []
        async with Server(_sse_stream(4, 0)) as server, client() as http:
            lines, decoder = LineSplitter(), SSEDecoder()
            async with await http.open(http.endpoint(server.url()), b"GET", timeout=5) as stream:
                async for piece in stream:
                    for line in lines.feed(piece):
                        if (event := decoder.feed(line)) is not None:
                            events.append(event)
        return events

    assert run(go()) == ["0", "1", "2", "3"]


# -- the stub model ----------------------------------------------------------------------------


def test_against_the_stub_model_concurrently_and_streamed() -> None:
    import json

    with StubServer(StubConfig()) as stub:

        async def go() -> tuple[list[str], bytes]:
            async with client(
                max_connections=8, headers={"Content-Type": "application/json"}
            ) as http:
                endpoint = http.endpoint(f"{stub.url}/chat/completions")

                async def ask(i: int) -> str:
                    body = json.dumps(
                        {"model": "stub", "messages": [{"role": "user", "content": f"q{i}"}]}
                    )
                    reply = await http.request(endpoint, b"POST", body.encode(), timeout=10)
                    assert reply.status == 200
                    return str(json.loads(reply.body)["choices"][0]["message"]["content"])

                answers = await asyncio.gather(*(ask(i) for i in range(40)))
                body = json.dumps(
                    {
                        "model": "stub",
                        "stream": True,
                        "messages": [{"role": "user", "content": "a b"}],
                    }
                )
                async with await http.open(endpoint, b"POST", body.encode(), timeout=10) as stream:
                    streamed = await stream.read()
                return answers, streamed

        answers, streamed = run(go())
    assert answers == [f"echo: q{i}" for i in range(40)]
    assert streamed.rstrip().endswith(b"data: [DONE]")


# -- event loops and closing ----------------------------------------------------------------


def test_one_client_across_event_loops_and_aclose() -> None:
    with StubServer(StubConfig()) as stub:
        http = client()
        url = f"{stub.url}/models"

        async def once() -> int:
            return (await get(http, url)).status

        gc.collect()  # what earlier tests left behind is not this test's to report
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert run(once()) == 200  # this loop's pool closes with the loop
            assert run(once()) == 200
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                assert runner.run(once()) == 200
            run(http.aclose())
            gc.collect()
        leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert not leaks
        with pytest.raises(RuntimeError, match="closed"):
            run(once())


def test_aclose_closes_every_pooled_socket() -> None:
    async def go() -> tuple[int, int]:
        async with Server(answering(ok())) as server:
            http = client()
            endpoint = http.endpoint(server.url())
            await asyncio.gather(
                *(http.request(endpoint, b"POST", b"", timeout=5) for _ in range(3))
            )
            before = server.open
            await http.aclose()
            await asyncio.sleep(0.1)
            return before, server.open

    before, after = run(go())
    assert before >= 1 and after == 0


def test_the_end_of_a_loop_closes_its_pool() -> None:
    async def use_and_forget(url: str) -> None:
        await get(client(), url)  # never closed: the loop's shutdown closes the pool

    async def main() -> tuple[int, int]:
        async with Server(answering(ok())) as server:
            # another thread runs (and ends) an event loop that used the client
            await asyncio.get_running_loop().run_in_executor(
                None, run, use_and_forget(server.url())
            )
            await asyncio.sleep(0.1)
            return server.connections, server.open

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run(main()) == (1, 0)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


# -- URLs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "example.com:80/x",
        "http:///x",
        "http://exa mple.com/",
        "http://h:99999/",
    ],
)
def test_unusable_urls(url: str) -> None:
    with pytest.raises(InvalidURL):
        client().endpoint(url)


def test_endpoint_forms() -> None:
    http = client(proxies={"https": "http://p:3128"})
    plain = http.endpoint("http://user:pw@Example.com/a b?x=1")
    assert (plain.host, plain.port, plain.authority, plain.target) == (
        "example.com",
        80,
        "example.com",
        b"/a%20b?x=1",
    )
    assert plain.basic_auth == b"Authorization: Basic dXNlcjpwdw==\r\n"
    v6 = http.endpoint("http://[::1]:8080/")
    assert (v6.host, v6.authority) == ("::1", "[::1]:8080")
    idn = http.endpoint("https://bücher.example/")
    assert idn.host == "xn--bcher-kva.example" and idn.proxy is not None
    assert "pw" not in repr(plain) and "Authorization" not in repr(plain)


def test_header_lines_are_checked() -> None:
    assert header_lines({"A": "1", "B-c": " two "}) == b"A: 1\r\nB-c: two\r\n"
    with pytest.raises(ValueError, match="not a valid header name"):
        header_lines({"Bad Name": "x"})
    with pytest.raises(ValueError, match="line break"):
        header_lines({"X": "a\r\nInjected: yes"})


# -- TLS -------------------------------------------------------------------------------------


def _self_signed(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (and 127.0.0.1 when it is localhost) and its
    key, made with the cryptography package or the openssl command; skips (fails under CI)
    when neither is there."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    ip = name == "localhost"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            if os.environ.get("CI"):
                pytest.fail("neither the cryptography package nor the openssl command is installed")
            pytest.skip("neither the cryptography package nor the openssl command is installed")
        alt = f"DNS:{name}" + (",IP:127.0.0.1" if ip else "")
        command = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt"]
        command += ["ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key)]
        command += ["-out", str(cert), "-days", "2", "-subj", f"/CN={name}"]
        command += ["-addext", f"subjectAltName={alt}"]
        subprocess.run(command, check=True, capture_output=True)
        return cert, key
    import ipaddress

    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    alt_names: list[x509.GeneralName] = [x509.DNSName(name)]
    if ip:
        alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _self_signed(tmp_path_factory.mktemp("tls"))


def _server_context(certificate: tuple[Path, Path], names: list[str | None]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)

    def note(_sock: Any, name: str | None, _ctx: Any) -> None:
        names.append(name)

    context.sni_callback = note
    return context


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_verified_with_sni_and_reused(certificate: tuple[Path, Path], loop: str) -> None:
    names: list[str | None] = []
    trusted = ssl.create_default_context(cafile=str(certificate[0]))

    async def go() -> tuple[list[bytes], int]:
        async with Server(answering(ok(b"secure")), _server_context(certificate, names)) as server:
            async with client(ssl_context=trusted) as http:
                bodies = [
                    (await get(http, server.url(scheme="https", host="localhost"))).body
                    for _ in range(3)
                ]
            return bodies, server.connections

    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(go()) == ([b"secure"] * 3, 1)
    assert names == ["localhost"]


def test_tls_is_verified_by_default(certificate: tuple[Path, Path]) -> None:
    async def go() -> None:
        async with (
            Server(answering(ok()), _server_context(certificate, [])) as server,
            client() as http,
        ):
            await get(http, server.url(scheme="https", host="localhost"))

    with pytest.raises(ConnectFailed, match="SSLCertVerificationError"):
        run(go())


def test_the_default_tls_context_verifies_with_the_configured_cas(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmops.adapters.http1 import default_ssl_context

    def fresh() -> ssl.SSLContext:
        default_ssl_context.cache_clear()
        return default_ssl_context()

    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        only_ours = fresh()
        monkeypatch.delenv("SSL_CERT_FILE")
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        bundled = fresh()  # certifi's bundle
    finally:
        default_ssl_context.cache_clear()
    for context in (only_ours, bundled):
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert only_ours.cert_store_stats()["x509_ca"] == 1
    assert bundled.cert_store_stats()["x509_ca"] > 50


def test_tls_checks_the_host_name(tmp_path: Path) -> None:
    other = _self_signed(tmp_path, "other.test")  # trusted, but for another name
    trusted = ssl.create_default_context(cafile=str(other[0]))

    async def go() -> None:
        async with (
            Server(answering(ok()), _server_context(other, [])) as server,
            client(ssl_context=trusted) as http,
        ):
            await get(http, server.url(scheme="https", host="localhost"))

    with pytest.raises(ConnectFailed, match=r"SSLCertVerificationError.*[Hh]ostname mismatch"):
        run(go())


# -- proxies ------------------------------------------------------------------------------------


class ForwardProxy:
    """A tiny forward proxy: an absolute-form request is sent on to its origin (one origin
    connection per request); CONNECT opens a tunnel. Keeps every request head it got."""

    def __init__(self, refuse: bytes | None = None) -> None:
        self.heads: list[str] = []
        self.refuse = refuse
        self.server: asyncio.Server | None = None
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head.decode("latin-1"))
                method, target, _ = head.split(b"\r\n", 1)[0].split(b" ")
                if method == b"CONNECT":
                    if self.refuse is not None:
                        writer.write(self.refuse)
                        await writer.drain()
                        return
                    host, port = target.rsplit(b":", 1)
                    up_reader, up_writer = await asyncio.open_connection(host.decode(), int(port))
                    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                    return
                lines = head.decode("latin-1").split("\r\n")
                length = next(
                    (
                        int(v)
                        for n, _, v in (x.partition(":") for x in lines)
                        if n.lower() == "content-length"
                    ),
                    0,
                )
                body = await reader.readexactly(length)
                url = urllib.parse.urlsplit(target.decode())
                kept = [
                    x for x in lines[1:] if x and not x.lower().startswith("proxy-authorization")
                ]
                origin = (
                    f"{method.decode()} {url.path or '/'} HTTP/1.1\r\n"
                    + "\r\n".join(kept)
                    + "\r\n\r\n"
                )
                up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port)
                up_writer.write(origin.encode("latin-1") + body)
                up_writer.write_eof()
                writer.write(await up_reader.read())
                up_writer.close()
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> ForwardProxy:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def test_plain_http_goes_to_the_proxy_in_absolute_form() -> None:
    async def go() -> tuple[list[bytes], ForwardProxy, Server]:
        async with Server(answering(ok(b"via proxy"))) as origin, ForwardProxy() as proxy:
            user = "http://pu:pp@" + proxy.url.removeprefix("http://")
            async with HttpClient(proxies={"http": user}) as http:
                endpoint = http.endpoint(origin.url("/v1/chat"))
                bodies = [
                    (await http.request(endpoint, b"POST", b"{}", timeout=5)).body for _ in range(2)
                ]
            return bodies, proxy, origin

    bodies, proxy, origin = run(go())
    assert bodies == [b"via proxy"] * 2 and len(proxy.heads) == 2
    head = proxy.heads[0]
    assert head.startswith(f"POST http://127.0.0.1:{origin.port}/v1/chat HTTP/1.1\r\n")
    assert (
        f"Host: 127.0.0.1:{origin.port}" in head and "Proxy-Authorization: Basic cHU6cHA=" in head
    )
    assert "Proxy-Authorization" not in origin.requests[0][1]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_https_tunnels_through_connect_then_tls(certificate: tuple[Path, Path], loop: str) -> None:
    names: list[str | None] = []
    trusted = ssl.create_default_context(cafile=str(certificate[0]))

    async def go() -> tuple[list[bytes], ForwardProxy, Server]:
        async with (
            Server(answering(ok(b"tunnelled")), _server_context(certificate, names)) as origin,
            ForwardProxy() as proxy,
        ):
            user = "http://pu:proxy-secret@" + proxy.url.removeprefix("http://")
            async with HttpClient(proxies={"https": user}, ssl_context=trusted) as http:
                endpoint = http.endpoint(origin.url(scheme="https", host="localhost"))
                bodies = [
                    (
                        await http.request(
                            endpoint,
                            b"POST",
                            b"{}",
                            header_lines({"Authorization": "Bearer sk-x"}),
                            timeout=5,
                        )
                    ).body
                    for _ in range(2)
                ]
            return bodies, proxy, origin

    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        bodies, proxy, origin = runner.run(go())
    assert bodies == [b"tunnelled"] * 2
    assert len(proxy.heads) == 1  # one tunnel, reused
    assert proxy.heads[0].startswith(f"CONNECT localhost:{origin.port} HTTP/1.1\r\n")
    assert "Proxy-Authorization: Basic cHU6cHJveHktc2VjcmV0" in proxy.heads[0]
    assert "sk-x" not in proxy.heads[0]  # the request itself only travels inside the tunnel
    assert names == ["localhost"] and origin.connections == 1


def test_a_refused_tunnel_says_so_without_credentials() -> None:
    async def go() -> None:
        async with ForwardProxy(
            refuse=b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
        ) as proxy:
            user = "http://pu:proxy-secret@" + proxy.url.removeprefix("http://")
            async with HttpClient(proxies={"https": user}) as http:
                await get(http, "https://model.invalid/v1")

    with pytest.raises(
        ProxyRefused,
        match=r"answered 407 Proxy Authentication Required to CONNECT model\.invalid:443",
    ) as info:
        run(go())
    assert "proxy-secret" not in str(info.value) and "pu:" not in str(info.value)


def test_no_proxy_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    async def go() -> tuple[ForwardProxy, list[bytes]]:
        async with Server(answering(ok(b"direct"))) as origin, ForwardProxy() as proxy:
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.1")
            bodies = []
            async with HttpClient() as http:  # reads the environment now
                bodies.append((await get(http, origin.url())).body)
            monkeypatch.setenv("NO_PROXY", "example.com")
            async with HttpClient() as http:
                bodies.append((await get(http, origin.url())).body)
            return proxy, bodies

    proxy, bodies = run(go())
    assert bodies == [b"direct", b"direct"]
    assert len(proxy.heads) == 1  # only the second client went through the proxy


def test_only_http_proxies_are_supported() -> None:
    with pytest.raises(InvalidURL, match="https proxies are not supported"):
        HttpClient(proxies={"http": "https://proxy:3128"}).endpoint("http://example.com/")


# -- arbitrary bytes from the server --------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.0 204 No Content\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\n",
        b"Content-Length: 5\r\n",
        b"Content-Length: -1\r\n",
        b"Content-Length: 99999999999999999999999\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip\r\n",
        b"Connection: close\r\n",
        b" folded\r\n",
        b"\r\n",
        b"5\r\nhello\r\n",
        b"0\r\n\r\n",
        b"ff;x=y\r\n",
        b"X: y\r\n",
        b"\n",
        b"\r",
        b"zz\r\n",
        b"0\r\nTrailer: x\r\n\r\n",
        b"\x00",
        b"\xff\xfe",
    ]
)
_PAYLOADS = st.one_of(
    st.binary(max_size=200),
    st.lists(st.one_of(_PIECES, st.binary(max_size=6)), max_size=14).map(b"".join),
)


@given(payload=_PAYLOADS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_bytes_from_the_server_raise_only_our_errors(payload: bytes) -> None:
    async def reply_and_close(peer: Peer) -> None:
        await peer.request()
        await peer.send(payload)

    async def go() -> None:
        async with (
            Server(reply_and_close) as server,
            client(max_head_bytes=512, max_body_bytes=512) as http,
        ):
            endpoint = http.endpoint(server.url())
            with contextlib.suppress(HttpError):
                reply = await http.request(endpoint, b"GET", None, timeout=2)
                assert 100 <= reply.status <= 999 and len(reply.body) <= 512
            with contextlib.suppress(HttpError):
                async with await http.open(endpoint, b"GET", timeout=2) as stream:
                    async for piece in stream:
                        assert piece

    run(go())


@given(head=st.binary(max_size=300))
@settings(max_examples=400, deadline=None)
def test_any_head_parses_or_is_a_protocol_error(head: bytes) -> None:
    try:
        status, reason, headers, *_ = _parse_head(head)
    except ProtocolError:
        return
    assert 100 <= status <= 999 and isinstance(reason, str)
    assert all(isinstance(v, str) for v in headers.values())


@given(data=st.lists(st.binary(max_size=40), max_size=8))
@settings(max_examples=300, deadline=None)
def test_any_chunked_body_decodes_or_is_a_protocol_error(data: list[bytes]) -> None:
    conn = _Connection(asyncio.new_event_loop(), None, 1 << 20)
    conn.loop.close()
    body = _Body(conn, 1, 0, 1024)
    try:
        for piece in data:
            conn.buf += piece
            while (taken := body.take()) is not None and taken:
                pass
            if body.done:
                break
        conn.eof = True
        while (taken := body.take()) is not None and taken:
            pass
    except (ProtocolError, ConnectionLost):
        pass


def test_headers_mapping_api() -> None:
    headers = Headers([("A", "1"), ("b", "2"), ("a", "3")])
    assert dict(headers) == {"a": "1, 3", "b": "2"} and len(headers) == 2
    assert headers.get_all("A") == ["1", "3"] and headers.raw()[1] == ("b", "2")
    assert "B" in headers and "c" not in headers
    assert headers.get("C", "-") == "-" and repr(headers).startswith("Headers([('A', '1')")


# -- fast paths ---------------------------------------------------------------------------

CL_VALUES = st.sampled_from(
    [b"0", b"5", b" 17 ", b"\t3", b"5, 5", b"5,6", b"+5", b"-1", b"", b"abc", b"1" * 18, b"1" * 19]
)


@given(
    status=st.sampled_from([100, 101, 200, 201, 204, 304, 404, 599]),
    name=st.sampled_from([b"Content-Length", b"content-length", b"CONTENT-LENGTH"]),
    value=CL_VALUES,
    coding=st.sampled_from([None, b"chunked", b"gzip"]),
    reason=st.sampled_from([b" OK", b"", b" "]),
    no_body=st.booleans(),
)
@settings(max_examples=400, deadline=None)
def test_the_usual_head_parses_as_the_full_parser_reads_it(
    status: int, name: bytes, value: bytes, coding: bytes | None, reason: bytes, no_body: bool
) -> None:
    """``_parse_head``'s fast path (one Content-Length, HTTP/1.1) against its full path,
    which an extra ``Connection: keep-alive`` field (no change for HTTP/1.1) forces."""
    head = b"HTTP/1.1 %d%s\r\nDate: x\r\n%s:%s" % (status, reason, name, value)
    if coding is not None:
        head += b"\r\nTransfer-Encoding: " + coding

    def outcome(data: bytes) -> object:
        try:
            status, reason, headers, mode, length, reuse = _parse_head(data, no_body)
        except ProtocolError as exc:
            return str(exc)
        return status, reason, headers.get("content-length"), mode, length, reuse

    assert outcome(head) == outcome(head + b"\r\nConnection: keep-alive")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 12", (200, "OK", 0, 12, True)),  # fast
        (b"HTTP/1.1 200\r\nContent-Length:  7 ", (200, "", 0, 7, True)),  # fast
        (b"HTTP/1.0 200 OK\r\nContent-Length: 3", (200, "OK", 0, 3, False)),  # 1.0: full
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3", (200, "OK", 0, 3, True)),  # full
        (b"HTTP/1.1 204 No\r\nContent-Length: 3", (204, "No", 3, 0, True)),  # no body
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close", (200, "OK", 0, 3, False)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4", "conflicting"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked", (200, "OK", 1, 0, False)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789", "invalid Content-Length"),
    ],
)
def test_content_length_heads_fast_and_full(head: bytes, expected: object) -> None:
    if isinstance(expected, str):
        with pytest.raises(ProtocolError, match=expected):
            _parse_head(head)
        return
    status, reason, headers, mode, length, reuse = _parse_head(head)
    assert (status, reason, mode, length, reuse) == expected
    assert headers.raw()[0][0].lower() == "content-length"


def test_the_one_wait_exchange_and_its_fallbacks_on_one_connection() -> None:
    """The usual exchange (the whole reply in one piece) and the ones that leave its fast
    path (the head in pieces, the body after the head, a head over the limit) on one
    keep-alive connection; then a head over the limit in one piece."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"

    async def handler(peer: Peer) -> None:
        step = 0
        while await peer.request() is not None:
            if step == 0:
                await peer.send(head + b"hello")
            elif step == 1:  # the head in two pieces
                await peer.send(head[:20])
                await asyncio.sleep(0.02)
                await peer.send(head[20:] + b"world")
            elif step == 2:  # the body after the head
                await peer.send(head)
                await asyncio.sleep(0.02)
                await peer.send(b"again")
            else:
                await peer.send(b"HTTP/1.1 200 OK\r\nX: " + b"y" * 200 + b"\r\n\r\n")
            step += 1

    async def go() -> tuple[list[bytes], int, str]:
        async with Server(handler) as server, client(max_head_bytes=100) as http:
            bodies = [(await get(http, server.url())).body for _ in range(3)]
            with pytest.raises(TooLarge) as caught:
                await get(http, server.url())
            return bodies, server.connections, str(caught.value)

    bodies, connections, error = run(go())
    assert bodies == [b"hello", b"world", b"again"]
    assert connections == 1
    assert error == "the response head is over 100 bytes"
