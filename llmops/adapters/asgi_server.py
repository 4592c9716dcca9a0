"""llmops' own HTTP/1.1 server for one ASGI 3 application: what ``llmops serve`` (the
gateway) runs on. Used by ``llmops.runtime.serving``; the stub model server and the
controller stay on uvicorn.

Why not uvicorn here: the gateway's target is at most 1 ms added to a model call, and
uvicorn's per-request Python work (a protocol object of many callbacks, a scope of a
dozen keys, header validation by regular expression, two writes per response, a
proxy-headers middleware) measured about 0.2 ms at 200 requests/s on a 2-core machine,
a fifth of the budget (``benchmarks/bench_gateway.py``). This server keeps what the
gateway needs and does it once: requests are parsed by ``httptools`` (llhttp, in C), the
loop is ``uvloop`` when installed, a whole response (start and one body message) leaves
in one socket write, and the per-request state is one small object.

What it does (tested in ``tests/adapters/test_asgi_server.py``): keep-alive (HTTP/1.1 by
default, HTTP/1.0 when asked) with an idle timeout; pipelined requests answered in
order; request bodies streamed to the app with back-pressure (reading pauses while the
app is behind); ``Expect: 100-continue``; streamed responses chunked (or close-delimited
for HTTP/1.0) with write back-pressure; HEAD, 1xx, 204 and 304 without a body; 400 for a
malformed request, 431 for a request head over the limit, 500 when the app fails before
answering; ``http.disconnect`` when the client leaves; ASGI lifespan with state; and a
graceful stop (stop accepting, close idle connections, let requests in flight finish
within a deadline, then cancel them). Not supported: WebSockets (an upgrade request is
answered as plain HTTP), HTTP/2, TLS (the gateway sits behind a Service or ingress).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import httptools

from llmops.domain.errors import ExternalError

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[None]]

log = logging.getLogger("llmops.server")

_ASGI = {"version": "3.0", "spec_version": "2.3"}
_REASONS = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}
#: the status line of each known status, made once
_STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in _REASONS.items()}
_NO_BODY_STATUS = frozenset({204, 304})
_FRAMING = frozenset({b"content-length", b"date", b"connection", b"transfer-encoding"})


class _TooLarge(Exception):
    """Raised from a parser callback: the request head is over the limit."""


class StartupFailed(ExternalError):
    """The app's lifespan startup failed; nothing was served."""


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Limits and timeouts of one server."""

    #: request line and headers; a longer head is answered 431 and the connection closed
    max_head_bytes: int = 65536
    #: an idle keep-alive connection is closed after this many seconds
    keep_alive_seconds: float = 5.0
    #: on stop, requests in flight get this long to finish before they are cancelled
    graceful_seconds: float = 30.0
    #: request body bytes buffered ahead of the app before reading pauses
    max_body_buffer: int = 65536


def bind(host: str, port: int) -> socket.socket:
    """A listening, non-blocking TCP socket on ``host:port`` (0: a free port);
    ``ExternalError`` when that cannot be (the port is taken, the host is not ours)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ExternalError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} "
            "(choose another port, or stop what is using it)"
        ) from exc
    return sock


class _Clock:
    """The ``date`` header value, formatted once per second."""

    __slots__ = ("line_value", "second", "value")

    def __init__(self) -> None:
        self.second = -1
        self.value = b""
        self.line_value = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.value = formatdate(now, usegmt=True).encode("ascii")
            self.line_value = b"date: %s\r\n" % self.value
        return self.value

    def line(self) -> bytes:
        """The whole ``date: ...\\r\\n`` header line (one concatenation less per response)."""
        second = self.second
        if not second <= time.time() < second + 1:  # (no int() per call)
            self.date()
        return self.line_value


_CLOCK = _Clock()


def _scope_base(server: Any, client: Any) -> dict[str, Any]:
    """The http scope of a connection's requests, the request's own values to be set:
    each request's scope is a copy (the keys in the order of the ASGI spec)."""
    return {
        "type": "http",
        "asgi": _ASGI,
        "http_version": "1.1",
        "server": server,
        "client": client,
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [],
        "state": {},
    }


def _plain(status: int, text: str) -> bytes:
    body = text.encode()
    return b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\ndate: %s\r\n\r\n%s" % (
        status, _REASONS.get(status, b""), len(body), _CLOCK.date(), body
    )  # fmt: skip


class _Exchange:
    """One request and its response on a connection. The exchange itself is the ASGI
    ``send`` callable (no bound method made per request), and it offers :meth:`llmops_respond`
    to apps that know this server: a whole response without the two messages."""

    __slots__ = (
        "body",
        "body_done",
        "chunked",
        "conn",
        "disconnected",
        "done",
        "expect_continue",
        "final_sent",
        "head",
        "keep_alive",
        "length_left",
        "no_body",
        "scope",
        "started",
        "task",
        "waiters",
    )

    # set by _head, read once the response has started
    head: bytes
    chunked: bool
    no_body: bool
    length_left: int | None

    def __init__(self, conn: _Connection, scope: Message, keep_alive: bool, expect: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        #: a 100 Continue is owed before the first read of the body
        self.expect_continue = expect
        self.body = bytearray()
        self.body_done = False
        self.final_sent = False
        self.disconnected = False
        self.started = False
        self.done = False
        #: receive() calls waiting for body bytes, the end of the response or the client
        #: to go (an app may listen for the disconnect in a task of its own)
        self.waiters: list[asyncio.Future[None]] = []
        self.task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        waiters = self.waiters
        if waiters:
            self.waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    # -- the ASGI callables ------------------------------------------------------------

    async def receive(self) -> Message:
        if self.disconnected or self.done:
            return {"type": "http.disconnect"}
        if self.final_sent:
            # the whole body was handed out: wait for the response or the client to end
            while not (self.done or self.disconnected):
                await self._wait()
            return {"type": "http.disconnect"}
        if not self.body and not self.body_done:
            if self.expect_continue and not self.started:
                self.expect_continue = False
                self.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.conn.resume_reading()
            while not (self.body or self.body_done or self.disconnected):
                await self._wait()
            if self.disconnected:
                return {"type": "http.disconnect"}
        body = bytes(self.body)
        self.body.clear()
        if self.body_done:
            self.final_sent = True
        else:
            self.conn.resume_reading()
        return {"type": "http.request", "body": body, "more_body": not self.body_done}

    async def _wait(self) -> None:
        waiter = self.conn.loop.create_future()
        self.waiters.append(waiter)
        await waiter

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if not self.started or self.done:
                raise RuntimeError(
                    f"ASGI message {kind!r} sent "
                    + (
                        "before http.response.start"
                        if not self.started
                        else "after the response ended"
                    )
                )
            if self.disconnected:
                return
            body: bytes = message.get("body", b"")
            if not message.get("more_body", False):
                self._last(body)
                return
            self._write(self._frame(body, True))
            if self.conn.write_paused:
                await self.conn.drain()
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("ASGI message 'http.response.start' sent twice")
            self.head = self._head(message["status"], message.get("headers") or ())
            self.started = True
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    __call__ = send

    def llmops_respond(
        self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """Send ``http.response.start`` (``status``, ``headers``) and one final
        ``http.response.body`` (``body``) at once, with the same checks, errors and
        framing, but no message dicts and no coroutines (``llmops.runtime.httpio.Reply``
        uses it when its ``send`` has it; under any other server it sends the two
        messages). Nothing to await: the body is whole, as a final body message's is."""
        if self.started:
            raise RuntimeError("ASGI message 'http.response.start' sent twice")
        self.head = self._head(status, headers or ())
        self.started = True
        if self.done:
            raise RuntimeError(
                "ASGI message 'http.response.body' sent after the response ended"
            )
        if not self.disconnected:
            self._last(body)

    def _last(self, body: bytes) -> None:
        """The final body piece: framed, written after the head if that is still unsent,
        and the exchange ended."""
        self._write(self._frame(body, False))
        self.done = True
        if self.length_left:  # shorter than its content-length: cannot be reused
            self.keep_alive = False
        self.conn.finished(self)

    def _write(self, data: bytes) -> None:
        """Write ``data``, after the head while that is still unsent (one write)."""
        if self.head:
            data = self.head + data
            self.head = b""
        if data:
            self.conn.write(data)

    def _head(self, status: int, headers: Any) -> bytes:
        length: int | None = None
        chunked = dated = no_body = False
        lines = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
        for raw_name, value in headers:
            name = raw_name.lower()
            if name in _FRAMING:
                if name == b"content-length":
                    length = int(value)
                elif name == b"date":
                    dated = True
                elif name == b"connection":
                    if value.lower() == b"close":
                        self.keep_alive = False
                    continue  # written below, from what the connection will do
                else:  # transfer-encoding, written below
                    chunked = value.lower() == b"chunked"
                    continue
            lines.append(b"%s: %s\r\n" % (raw_name, value))
        head = b"".join(lines)
        # a name or value with CR or LF would smuggle headers: count instead of scanning
        # each (every line, the status line too, has exactly one of each)
        if head.count(b"\n") != len(lines) or head.count(b"\r") != len(lines):
            raise RuntimeError("a response header name or value contains CR or LF")
        if not dated:
            head += _CLOCK.line()
        left: int | None = None
        if self.scope["method"] == "HEAD" or status in _NO_BODY_STATUS or status < 200:
            no_body = True
        elif length is not None and not chunked:
            left = length
        elif self.scope["http_version"] == "1.1":
            chunked = True
        else:
            self.keep_alive = False  # HTTP/1.0, no length: the close ends the body
        self.no_body = no_body
        self.length_left = left
        self.head = b""
        if chunked and not no_body:
            self.chunked = True
            head += b"transfer-encoding: chunked\r\n"
        else:
            self.chunked = False
        if not self.keep_alive or self.conn.closing:
            self.keep_alive = False
            head += b"connection: close\r\n"
        return head + b"\r\n"

    def _frame(self, body: bytes, more: bool) -> bytes:
        if self.no_body:
            return b""
        if self.chunked:
            if body:
                body = b"%x\r\n%s\r\n" % (len(body), body)
            return body if more else body + b"0\r\n\r\n"
        left = self.length_left
        if left is not None:
            if len(body) > left:
                raise RuntimeError("the response body is longer than its content-length")
            self.length_left = left - len(body)
        return body


class _Connection(asyncio.Protocol):
    """One client connection: parses requests and runs the app for each, in order."""

    def __init__(self, server: AsgiServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.app = server.app
        self.loop = loop
        self.limits = server.limits
        self.max_body = self.limits.max_body_buffer
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        #: an ``Expect: 100-continue`` header in the head being read
        self.expect = False
        #: the last request target and what it split into (raw path, query, path): a
        #: keep-alive client mostly asks for the same URL again
        self.last_target: bytes | None = None
        self.last_url: tuple[bytes, bytes, str] = (b"", b"", "")
        self.head_size = 0
        self.max_head = self.limits.max_head_bytes
        self.too_large = False
        self.in_head = False
        self.current: _Exchange | None = None
        self.active: _Exchange | None = None
        self.queue: deque[_Exchange] = deque()
        self.server_addr: Any = None
        self.client_addr: Any = None
        self.scope_base = _scope_base(None, None)
        self.read_paused = False
        self.write_paused = False
        self.drained: asyncio.Future[None] | None = None
        #: since when the connection waits for a request (None: a request is being read
        #: or answered); the server's sweep closes it after keep_alive_seconds
        self.idle_since: float | None = None
        self.closing = False
        self.broken = False
        self.lost = False

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server = transport.get_extra_info("sockname")
        client = transport.get_extra_info("peername")
        self.server_addr = (server[0], server[1]) if isinstance(server, tuple) else None
        self.client_addr = (client[0], client[1]) if isinstance(client, tuple) else None
        self.scope_base = _scope_base(self.server_addr, self.client_addr)
        self.server.connections.add(self)
        if self.server.stopping:
            self.closing = True
            transport.close()
            return
        self.idle_since = time.monotonic()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.server.forget(self)
        self.idle_since = None
        for exchange in (self.active, self.current, *self.queue):
            if exchange is not None and not exchange.done:
                exchange.disconnected = True
                exchange.wake()
        if self.current is not None and self.current.task is None:
            self.current = None
        self.queue.clear()
        drained = self.drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.broken:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # no protocol switch: the request is served as plain HTTP, then the
            # connection closes (what follows the head is not HTTP/1.1)
            current = self.current
            if current is not None:
                current.keep_alive = False
                if not current.body_done:
                    current.body_done = True
                    current.wake()
                self.current = None
            self.broken = True
            self.pause_reading()
        except httptools.HttpParserError as exc:
            self._refuse(431 if self.too_large else 400, _parser_problem(exc, self.too_large))
            return
        if self.in_head:  # a head still incomplete after this read: count what came
            self.head_size += len(data)
            if self.head_size > self.max_head:
                self.too_large = True
                self._refuse(431, "the request head is over the size limit")

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        drained = self.drained
        if drained is not None:
            self.drained = None
            if not drained.done():
                drained.set_result(None)

    # -- httptools callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.expect = False
        self.head_size = 0
        self.in_head = True

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        size = self.head_size + len(name) + len(value)
        self.head_size = size
        if size > self.max_head:
            self.too_large = True
            raise _TooLarge
        name = name.lower()
        self.headers.append((name, value))
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect = True

    def on_headers_complete(self) -> None:
        if self.head_size + 4 * len(self.headers) > self.max_head:
            self.too_large = True
            raise _TooLarge
        self.in_head = False
        self.idle_since = None  # (a head that never ends is closed by the idle sweep)
        parser = self.parser
        target = self.url
        if target == self.last_target:
            raw_path, query, path = self.last_url
        else:
            if target[:1] == b"/" and b"?" not in target and b"#" not in target:
                raw_path, query = target, b""  # the usual origin form, nothing to split
            else:
                url = httptools.parse_url(target)
                raw_path, query = url.path or b"/", url.query or b""
            path = raw_path.decode("ascii", "surrogateescape")
            if "%" in path:
                path = urllib.parse.unquote(path)
            self.last_target = target
            self.last_url = (raw_path, query, path)
        # a copy of the connection's scope with this request's values: cheaper than
        # building a dict of 13 keys (and in the same order)
        scope = self.scope_base.copy()
        scope["http_version"] = parser.get_http_version()
        scope["method"] = parser.get_method().decode("ascii")
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = query
        scope["headers"] = self.headers
        scope["state"] = self.server.state.copy()
        keep_alive = parser.should_keep_alive() and not self.closing
        exchange = _Exchange(self, scope, keep_alive, self.expect)
        self.current = exchange
        if self.active is None:  # (_start, inline)
            self.active = exchange
            exchange.task = self.loop.create_task(self._run(exchange))
        else:  # pipelined: wait for the one in flight, and read no further meanwhile
            self.queue.append(exchange)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        exchange = self.current
        if exchange is None or exchange.done:  # answered already: the rest is dropped
            return
        exchange.body += body
        if len(exchange.body) > self.max_body:
            self.pause_reading()
        if exchange.waiters:
            exchange.wake()

    def on_message_complete(self) -> None:
        exchange = self.current
        if exchange is None:
            return
        self.current = None
        exchange.body_done = True
        if exchange.waiters:
            exchange.wake()

    # -- running the app ---------------------------------------------------------------

    def _start(self, exchange: _Exchange) -> None:
        self.active = exchange
        exchange.task = self.loop.create_task(self._run(exchange))

    async def _run(self, exchange: _Exchange) -> None:
        try:
            await self.app(exchange.scope, exchange.receive, exchange)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                self.close()
                raise
            log.error("the app failed: %s: %s", type(exc).__name__, exc)
            if not exchange.started and not exchange.disconnected:
                self.write(_plain(500, "Internal Server Error"))
            self.close()
            exchange.done = True
            self.finished(exchange)
            return
        if not exchange.done:
            if not exchange.started and not exchange.disconnected:
                log.error("the app returned without a response")
                self.write(_plain(500, "Internal Server Error"))
            exchange.done = True
            self.close()
            self.finished(exchange)

    def finished(self, exchange: _Exchange) -> None:
        """``exchange``'s response is complete: close, or go on with the next request (the
        rest of a body the app did not read is read and dropped, as uvicorn does)."""
        exchange.body.clear()
        if exchange.waiters:
            exchange.wake()
        if self.active is exchange:
            self.active = None
        if self.lost:
            return
        if not exchange.keep_alive or self.closing:
            self.close()
            return
        if self.queue:
            self._start(self.queue.popleft())
            if not self.queue:
                self.resume_reading()
        elif self.broken:
            self.close()
        else:
            if self.read_paused:
                self.resume_reading()
            self.idle_since = time.monotonic()

    # -- transport -----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not self.lost and not transport.is_closing():
            transport.write(data)

    async def drain(self) -> None:
        if self.lost or not self.write_paused:
            return
        drained = self.drained
        if drained is None:
            drained = self.drained = self.loop.create_future()
        await drained

    def pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None and not self.lost:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and self.transport is not None and not self.lost and not self.broken:
            if self.queue or (
                self.current is not None and len(self.current.body) > self.max_body
            ):
                return
            self.read_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, text: str) -> None:
        """A malformed request: answer it and close. When the malformed part is the body
        of the request in flight, its app sees the client go (``http.disconnect``) and
        the 400 goes out unless the app has started its answer; when it is a pipelined
        request after it, the one in flight is answered first."""
        self.broken = True
        self.pause_reading()
        active = self.active
        if active is None:
            self.write(_plain(status, text))
            self.close()
        elif not active.body_done and not active.done:
            if not active.started:
                self.write(_plain(status, text))
            active.disconnected = True
            active.wake()
            self.close()
        else:
            active.keep_alive = False

    def idle_for(self, now: float) -> float:
        """How long the connection has waited for a request (0 while one is under way)."""
        since = self.idle_since
        if since is None or self.active is not None or self.queue:
            return 0.0
        return now - since

    def shut_down(self) -> None:
        """The server is stopping: close when idle, else after the request in flight."""
        self.closing = True
        if self.active is None and not self.queue:
            self.close()

    def abort(self) -> None:
        for exchange in (self.active, *self.queue):
            if exchange is not None and exchange.task is not None:
                exchange.task.cancel()
        if self.transport is not None:
            self.transport.abort()


def _parser_problem(exc: Exception, too_large: bool) -> str:
    if too_large:
        return "the request head is over the size limit"
    detail = str(exc).strip() or type(exc).__name__
    return f"malformed HTTP request: {detail}"


class _Lifespan:
    """The ASGI lifespan protocol around a server's life."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.answers: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.received = False
        self.supported = True
        self.error: str | None = None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": _ASGI, "state": self.state}
        try:
            await self.app(scope, self._receive, self.answers.put)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            if self.received:
                self.error = f"{type(exc).__name__}: {exc}"
        finally:
            if not self.received:
                self.supported = False  # an app without lifespan support
            await self.answers.put({"type": "lifespan.ended"})

    async def _receive(self) -> Message:
        self.received = True
        return await self.inbox.get()

    async def _exchange(self, event: str) -> None:
        await self.inbox.put({"type": f"lifespan.{event}"})
        answer = await self.answers.get()
        kind = answer["type"]
        if kind == f"lifespan.{event}.complete":
            return
        if kind == f"lifespan.{event}.failed":
            raise StartupFailed(
                _last_line(answer.get("message", "")) or f"the app's {event} failed"
            )
        if not self.supported:
            return
        raise StartupFailed(self.error or f"the app ended its lifespan during {event}")

    async def startup(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())
        await self._exchange("startup")

    async def shutdown(self) -> None:
        if self.task is None or self.task.done() or not self.supported:
            return
        try:
            await self._exchange("shutdown")
        except StartupFailed as exc:
            log.error("the app's shutdown failed: %s", exc.message)
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def _last_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else ""


class AsgiServer:
    """Serves one ASGI app over HTTP/1.1 until :meth:`stop`; see the module docstring."""

    def __init__(
        self, app: ASGIApp, *, limits: ServerLimits | None = None, lifespan: bool = True
    ) -> None:
        self.app = app
        self.limits = limits or ServerLimits()
        self.lifespan = lifespan
        self.state: dict[str, Any] = {}
        self.connections: set[_Connection] = set()
        self.started = False
        self.stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = False
        self._emptied: asyncio.Event | None = None
        self.loop_name = "uvloop" if _uvloop() is not None else "asyncio"

    def stop(self) -> None:
        """Begin a graceful stop; safe from any thread and from signal handlers."""
        self._stop_requested = True
        loop, event = self._loop, self._stop
        if loop is None or event is None or loop.is_closed():
            return
        if _in_loop(loop):
            event.set()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def forget(self, conn: _Connection) -> None:
        self.connections.discard(conn)
        if not self.connections and self._emptied is not None:
            self._emptied.set()

    async def serve(self, sockets: Sequence[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop = asyncio.Event()
        self._emptied = asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        lifespan = _Lifespan(self.app, self.state) if self.lifespan else None
        if lifespan is not None:
            await lifespan.startup()
        listeners = []
        try:
            for sock in sockets:
                listeners.append(
                    await loop.create_server(
                        lambda: _Connection(self, loop), sock=sock, backlog=2048
                    )
                )
            self.started = True
            sweep = loop.create_task(self._sweep())
            try:
                await self._stop.wait()
            finally:
                sweep.cancel()
        finally:
            self.stopping = True
            for listener in listeners:
                listener.close()
            await self._drain_connections()
            self.started = False
            if lifespan is not None:
                await lifespan.shutdown()

    async def _sweep(self) -> None:
        """Close connections idle for keep_alive_seconds (checked a few times per period)."""
        limit = self.limits.keep_alive_seconds
        every = min(1.0, max(0.01, limit / 4))
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.idle_for(now) >= limit:
                    conn.close()

    async def _drain_connections(self) -> None:
        assert self._emptied is not None
        for conn in list(self.connections):
            conn.shut_down()
        if self.connections:
            self._emptied.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._emptied.wait(), self.limits.graceful_seconds)
        tasks = [
            exchange.task
            for conn in self.connections
            for exchange in (conn.active, *conn.queue)
            if exchange is not None and exchange.task is not None
        ]
        for conn in list(self.connections):
            conn.abort()
        if tasks:  # let the cancelled requests unwind
            await asyncio.wait(tasks, timeout=1.0)

    def run(
        self,
        sockets: Sequence[socket.socket] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
    ) -> None:
        """Serve on an event loop of its own until stopped (SIGINT/SIGTERM in the main
        thread); returns after the graceful stop."""
        owned = [] if sockets is not None else [bind(host, port)]
        uvloop = _uvloop()
        loop = uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()
        main = threading.current_thread() is threading.main_thread()
        try:
            if main:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(signum, self.stop)
            loop.run_until_complete(self.serve(list(sockets) if sockets is not None else owned))
        finally:
            if main:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            for sock in owned:
                sock.close()


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _uvloop() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop
