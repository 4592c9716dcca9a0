"""llmops' own HTTP/1.1 server for one ASGI app, tested black-box over real loopback TCP.

Every test starts a real ``AsgiServer`` (its own event loop in a daemon thread, on a socket
from ``bind("127.0.0.1", 0)``) with a small ASGI app written here, and talks to it with raw
sockets writing exact bytes and reading the exact response bytes, so the framing is checked
precisely (status line, headers, content-length, chunked encoding, the server closing the
connection). httpx covers the ordinary keep-alive case, a subprocess covers SIGINT/SIGTERM,
and a property test feeds the server arbitrary bytes.

Shared state between the tests and the apps (which run on the server's loop, in another
thread) goes through ``threading.Event`` objects and plain lists.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from llmops.adapters.asgi_server import AsgiServer, ServerLimits, StartupFailed, bind
from llmops.domain.errors import ExternalError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

DEADLINE = 15.0  # generous: the machine is small and shared; never a timing target
ROOT = Path(__file__).resolve().parents[2]


# -- running a server in a thread ----------------------------------------------------------


@dataclass
class Running:
    """One server started by ``launch``: its own loop in a daemon thread."""

    server: AsgiServer
    port: int
    sock: socket.socket
    thread: threading.Thread
    limits: ServerLimits
    errors: list[BaseException] = field(default_factory=list)

    def stop_and_join(self) -> None:
        """stop() and wait for run() to return (it must, within the deadline)."""
        self.server.stop()
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "run() did not return after stop()"

    def close(self) -> None:
        if self.thread.is_alive():
            self.server.stop()
            # a request stuck by a failed test may hold the stop for graceful_seconds
            self.thread.join(self.limits.graceful_seconds + DEADLINE)
        self.sock.close()


def launch(
    app: App,
    limits: ServerLimits | None = None,
    *,
    lifespan: bool = True,
    wait: bool = True,
) -> Running:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    limits = limits or ServerLimits()
    server = AsgiServer(app, limits=limits, lifespan=lifespan)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # recorded, asserted by the test or the teardown
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"asgi-server-{port}", daemon=True)
    running = Running(
        server=server, port=port, sock=sock, thread=thread, limits=limits, errors=errors
    )
    thread.start()
    if wait:
        deadline = time.monotonic() + DEADLINE
        while not server.started:
            if errors:
                running.close()
                raise AssertionError(f"run() failed before starting: {errors[0]!r}")
            if not thread.is_alive():
                running.close()
                raise AssertionError("run() returned before the server started")
            if time.monotonic() > deadline:
                running.close()
                raise AssertionError("the server did not start in time")
            time.sleep(0.005)
    return running


class Launcher:
    """The fixture's factory: ``start(app, limits, lifespan=...)`` → a started server."""

    def __init__(self) -> None:
        self.started: list[Running] = []

    def __call__(
        self,
        app: App,
        limits: ServerLimits | None = None,
        *,
        lifespan: bool = True,
        wait: bool = True,
    ) -> Running:
        running = launch(app, limits, lifespan=lifespan, wait=wait)
        self.started.append(running)
        return running

    def teardown(self) -> None:
        problems: list[str] = []
        for running in self.started:
            running.close()
            if running.thread.is_alive():
                problems.append(f"server on port {running.port}: run() did not return")
            if running.errors:
                problems.append(f"server on port {running.port}: run() raised {running.errors!r}")
        assert not problems, "; ".join(problems)


@pytest.fixture
def start() -> Iterator[Launcher]:
    launcher = Launcher()
    yield launcher
    launcher.teardown()


# -- a raw HTTP/1.1 client -----------------------------------------------------------------


class Truncated(AssertionError):
    """The server closed the connection before the expected bytes arrived."""


@dataclass(frozen=True)
class Resp:
    version: str
    status: int
    reason: str
    header_list: list[tuple[str, str]]  # names lower-cased, in the order received
    body: bytes
    raw: bytes  # head and body bytes exactly as received

    @property
    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in self.header_list:
            out[name] = f"{out[name]}, {value}" if name in out else value
        return out

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.header_list if n == name]


class Conn:
    """One client connection writing exact bytes and parsing the exact response bytes."""

    def __init__(self, port: int, timeout: float = DEADLINE) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False
        self.recvs = 0

    def __enter__(self) -> Conn:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.sock.close()

    @property
    def local_port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def fill(self, size: int = 262144) -> bool:
        """One recv into the buffer; False at end of stream (EOF or reset)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(size)
        except ConnectionResetError:
            data = b""
        self.recvs += 1
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, sep: bytes, limit: int = 1 << 20) -> bytes:
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                end = i + len(sep)
                out = bytes(self.buf[:end])
                del self.buf[:end]
                return out
            assert len(self.buf) <= limit, f"no {sep!r} in the first {limit} bytes"
            start = max(0, len(self.buf) - len(sep) + 1)
            if not self.fill():
                raise Truncated(f"closed while waiting for {sep!r}; got {bytes(self.buf)[:200]!r}")

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self.fill():
                raise Truncated(f"closed after {len(self.buf)} of {n} bytes")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_to_close(self) -> bytes:
        while self.fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_chunked(self) -> tuple[bytes, bytes]:
        """(decoded body, raw bytes) of a chunked body; strict about the framing."""
        parts: list[bytes] = []
        raw: list[bytes] = []
        while True:
            line = self.read_until(b"\r\n")
            raw.append(line)
            size = int(line[:-2].split(b";")[0], 16)
            if size == 0:
                while True:
                    trailer = self.read_until(b"\r\n")
                    raw.append(trailer)
                    if trailer == b"\r\n":
                        return b"".join(parts), b"".join(raw)
            data = self.read_exact(size)
            crlf = self.read_exact(2)
            assert crlf == b"\r\n", f"chunk of {size} bytes not followed by CRLF: {crlf!r}"
            parts.append(data)
            raw.append(data + crlf)

    def read_response(self, method: str = "GET") -> Resp:
        head = self.read_until(b"\r\n\r\n")
        lines = head[:-4].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        assert version in ("HTTP/1.1", "HTTP/1.0"), f"bad status line {lines[0]!r}"
        assert len(code) == 3 and code.isdigit(), f"bad status line {lines[0]!r}"
        status = int(code)
        header_list: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            assert sep and name and name == name.strip(), f"bad header line {line!r}"
            header_list.append((name.lower(), value.strip()))
        names = [n for n, _ in header_list]
        te = ", ".join(v for n, v in header_list if n == "transfer-encoding").lower()
        if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
            body, raw = b"", b""
        elif te:
            assert te == "chunked", f"unexpected transfer-encoding {te!r}"
            assert "content-length" not in names, "both content-length and chunked"
            body, raw = self.read_chunked()
        elif "content-length" in names:
            assert names.count("content-length") == 1, "several content-length headers"
            length = int(dict(header_list)["content-length"])
            body = raw = self.read_exact(length)
        else:
            body = raw = self.read_to_close()
        return Resp(version, status, reason, header_list, body, head + raw)

    def closed_by_server(self, timeout: float = DEADLINE) -> bool:
        """True when the server closes (EOF or reset) before sending any further byte."""
        if self.buf:
            return False
        if self.eof:
            return True
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(self.timeout)
        if data:
            self.buf += data
            return False
        self.eof = True
        return True

    def silent_for(self, seconds: float) -> bool:
        """True when nothing arrives and the connection stays open for ``seconds``."""
        if self.buf or self.eof:
            return False
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return True
        except ConnectionResetError:
            data = b""
        finally:
            self.sock.settimeout(self.timeout)
        if data:
            self.buf += data
        else:
            self.eof = True
        return False


def get(port: int, path: str = "/", headers: str = "") -> Resp:
    """One GET on a new connection."""
    with Conn(port) as c:
        c.send(f"GET {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode())
        return c.read_response()


# -- small ASGI apps -----------------------------------------------------------------------


async def lifespan_protocol(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def http_app(handler: App, events: list[str] | None = None) -> App:
    """An app that answers the lifespan protocol and hands http scopes to ``handler``;
    "lifespan-done" goes to ``events`` once the shutdown is answered."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan_protocol(receive, send)
            if events is not None:
                events.append("lifespan-done")
            return
        assert scope["type"] == "http", scope["type"]
        await handler(scope, receive, send)

    return app


async def read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """Every message up to the last body chunk (or a disconnect)."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    return body, messages


def plain(body: bytes, *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]


async def respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": plain(body) if headers is None else headers,
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def until(event: threading.Event, timeout: float = DEADLINE) -> None:
    """Wait (without blocking the loop) until the test sets ``event``."""
    deadline = time.monotonic() + timeout
    while not event.is_set():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never released the app")
        await asyncio.sleep(0.005)


@dataclass
class Echo:
    """Records each http scope and its receive() messages; answers with the request body."""

    scopes: list[Scope] = field(default_factory=list)
    messages: list[list[Message]] = field(default_factory=list)
    loops: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan_protocol(receive, send)
            return
        self.scopes.append(scope)
        self.loops.append(type(asyncio.get_running_loop()).__module__)
        body, messages = await read_body(receive)
        self.messages.append(messages)
        await respond(
            send,
            200,
            body,
            plain(body, (b"x-method", scope["method"].encode()), (b"x-path", scope["raw_path"])),
        )


# -- bind, loops, run() and serve() -------------------------------------------------------


def test_bind_gives_a_listening_nonblocking_reusable_ipv4_socket() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.family == socket.AF_INET
        assert sock.getsockname()[0] == "127.0.0.1"
        assert sock.getsockname()[1] > 0
        assert sock.getblocking() is False
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        # it is listening: a client connects without anyone calling accept()
        with socket.create_connection(("127.0.0.1", sock.getsockname()[1]), timeout=DEADLINE):
            pass
    finally:
        sock.close()


def test_bind_ipv6_host_gives_an_ipv6_socket() -> None:
    try:
        sock = bind("::1", 0)
    except OSError as exc:  # no IPv6 loopback in this environment
        pytest.skip(f"IPv6 loopback unavailable: {exc}")
    try:
        assert sock.family == socket.AF_INET6
        assert sock.getsockname()[0] == "::1"
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    finally:
        sock.close()


def test_run_uses_uvloop_when_installed(start: Launcher) -> None:
    pytest.importorskip("uvloop")
    echo = Echo()
    r = start(echo)
    assert r.server.loop_name == "uvloop"
    assert get(r.port).status == 200
    assert echo.loops == ["uvloop"]
    r.stop_and_join()


def test_serve_runs_on_a_plain_asyncio_loop_and_stops() -> None:
    echo = Echo()
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = AsgiServer(echo)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(server.serve([sock]))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + DEADLINE
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, errors
            time.sleep(0.005)
        resp = get(port, "/plain")
        assert resp.status == 200
        assert resp.headers["x-path"] == "/plain"
        assert echo.loops[0].startswith("asyncio")
        server.stop()
        server.stop()  # idempotent
        thread.join(DEADLINE)
        assert not thread.is_alive(), "serve() did not return after stop()"
        assert errors == []
    finally:
        if thread.is_alive():
            server.stop()
            thread.join(DEADLINE)
        sock.close()


def test_run_binds_host_and_port_itself_without_sockets() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = AsgiServer(Echo())
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run(host="127.0.0.1", port=port)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + DEADLINE
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, errors
            time.sleep(0.005)
        assert get(port, "/own").headers["x-path"] == "/own"
    finally:
        server.stop()
        thread.join(DEADLINE)
    assert not thread.is_alive()
    assert errors == []


SIGNAL_SCRIPT = """
import sys
from llmops.adapters.asgi_server import AsgiServer, bind

async def app(scope, receive, send):
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})

sock = bind("127.0.0.1", 0)
print(sock.getsockname()[1], flush=True)
AsgiServer(app, lifespan=False).run(sockets=[sock])
print("returned", flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_run_in_the_main_thread(signum: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGNAL_SCRIPT],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60.0)
        assert ready, "the server process printed no port"
        line = proc.stdout.readline()
        assert line.strip().isdigit(), f"expected the port, got {line!r}"
        port = int(line)
        assert get(port).body == b"ok"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=DEADLINE)
        assert proc.returncode == 0, err.decode(errors="replace")
        assert out.decode().strip() == "returned"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- the request scope ---------------------------------------------------------------------


def test_scope_fields_of_an_http11_request(start: Launcher) -> None:
    echo = Echo()
    r = start(echo)
    with Conn(r.port) as c:
        c.send(
            b"POST /a%20b/%C3%A9/x%2Fy?q=1%202&flag HTTP/1.1\r\n"
            b"Host: example.test:8080\r\n"
            b"X-First: One\r\n"
            b"x-dup: a\r\n"
            b"X-Dup: B\r\n"
            b"Content-Type: text/plain\r\n"
            b"Content-Length: 3\r\n"
            b"\r\n"
            b"abc"
        )
        resp = c.read_response()
        client_port = c.local_port
    assert resp.status == 200
    assert resp.body == b"abc"
    (scope,) = echo.scopes
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["asgi"]["spec_version"] == "2.3"
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "POST"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/a b/é/x/y"
    assert scope["raw_path"] == b"/a%20b/%C3%A9/x%2Fy"
    assert scope["query_string"] == b"q=1%202&flag"
    assert scope["root_path"] == ""
    assert [tuple(h) for h in scope["headers"]] == [
        (b"host", b"example.test:8080"),
        (b"x-first", b"One"),
        (b"x-dup", b"a"),
        (b"x-dup", b"B"),
        (b"content-type", b"text/plain"),
        (b"content-length", b"3"),
    ]
    assert tuple(scope["server"]) == ("127.0.0.1", r.port)
    assert tuple(scope["client"]) == ("127.0.0.1", client_port)
    assert isinstance(scope["state"], dict)


def test_scope_of_an_http10_request_and_a_path_without_query(start: Launcher) -> None:
    echo = Echo()
    r = start(echo)
    with Conn(r.port) as c:
        c.send(b"GET /v1/models HTTP/1.0\r\n\r\n")
        resp = c.read_response()
    assert resp.status == 200
    (scope,) = echo.scopes
    assert scope["http_version"] == "1.0"
    assert scope["path"] == "/v1/models"
    assert scope["raw_path"] == b"/v1/models"
    assert scope["query_string"] == b""
    assert list(scope["headers"]) == []


def test_methods_reach_the_app_as_sent(start: Launcher) -> None:
    echo = Echo()
    r = start(echo)
    methods = ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "POST"]
    with Conn(r.port) as c:
        for method in methods:
            c.send(f"{method} /m HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n".encode())
            resp = c.read_response()
            assert resp.status == 200
            assert resp.headers["x-method"] == method
    assert [s["method"] for s in echo.scopes] == methods


def test_upgrade_request_is_served_as_plain_http(start: Launcher) -> None:
    echo = Echo()
    r = start(echo)
    with Conn(r.port) as c:
        c.send(
            b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        resp = c.read_response()
    assert resp.status == 200
    assert resp.headers["x-path"] == "/ws"
    assert echo.scopes[0]["type"] == "http"


# -- the request body ------------------------------------------------------------------------


def test_request_without_body_gives_one_empty_message(start: Launcher) -> None:
    echo = Echo()
    r = start(echo)
    assert get(r.port).status == 200
    (messages,) = echo.messages
    assert len(messages) == 1
    assert messages[0]["type"] == "http.request"
    assert messages[0].get("body", b"") == b""
    assert messages[0].get("more_body", False) is False


def test_request_body_sent_at_once_is_delivered_whole(start: Launcher) -> None:
    echo = Echo()
    r = start(echo)
    body = bytes(range(256)) * 40
    with Conn(r.port) as c:
        c.send(b"PUT /b HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        resp = c.read_response()
    assert resp.body == body
    (messages,) = echo.messages
    assert all(m["type"] == "http.request" for m in messages)
    assert [m.get("more_body", False) for m in messages] == [True] * (len(messages) - 1) + [False]


def test_request_body_sent_in_pieces_arrives_in_several_messages(start: Launcher) -> None:
    got: list[Message] = []
    first_piece = threading.Event()

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            got.append(message)
            if message.get("body"):
                first_piece.set()
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in got)
        await respond(send, 200, body)

    r = start(http_app(handler))
    with Conn(r.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello")
        assert first_piece.wait(DEADLINE), "the first body piece never reached the app"
        c.send(b" world")
        resp = c.read_response()
    assert resp.body == b"hello world"
    assert len(got) >= 2
    assert all(m["type"] == "http.request" for m in got)
    assert [m.get("more_body", False) for m in got] == [True] * (len(got) - 1) + [False]


def test_chunked_request_body_is_decoded(start: Launcher) -> None:
    echo = Echo()
    r = start(echo)
    with Conn(r.port) as c:
        c.send(
            b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n"
            b"1;ext=1\r\n \r\n"
            b"A\r\n0123456789\r\n"
            b"0\r\n\r\n"
        )
        resp = c.read_response()
        # the connection is still usable: framing ended exactly at the last chunk
        c.send(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n")
        after = c.read_response()
    assert resp.status == 200
    assert resp.body == b"hello 0123456789"
    assert after.headers["x-path"] == "/after"


def test_receive_after_the_body_waits_for_the_client_to_disconnect(start: Launcher) -> None:
    after_body: list[Message] = []
    returned = threading.Event()

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        if scope["path"] != "/wait":
            await respond(send, 200, b"ok")
            return
        after_body.append(await receive())
        returned.set()

    r = start(http_app(handler))
    c = Conn(r.port)
    c.send(b"POST /wait HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
    assert not returned.wait(0.3), f"receive() returned early: {after_body}"
    c.sock.close()
    assert returned.wait(DEADLINE), "receive() did not return after the client closed"
    assert after_body == [{"type": "http.disconnect"}]
    assert get(r.port).status == 200


def test_receive_after_a_complete_response_returns_disconnect(start: Launcher) -> None:
    after_response: list[Message] = []
    returned = threading.Event()

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await respond(send, 200, b"done")
        if scope["path"] == "/then-receive":
            after_response.append(await receive())
            returned.set()

    r = start(http_app(handler))
    with Conn(r.port) as c:
        c.send(b"GET /then-receive HTTP/1.1\r\nHost: t\r\n\r\n")
        assert c.read_response().body == b"done"
        # the client keeps the connection open: receive() returns because the response is done
        assert returned.wait(DEADLINE), "receive() still blocked after the response completed"
        assert after_response[0]["type"] == "http.disconnect"
        c.send(b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
        assert c.read_response().body == b"done"


def test_client_closing_mid_body_gives_disconnect_and_the_server_keeps_serving(
    start: Launcher,
) -> None:
    got: list[Message] = []
    first = threading.Event()
    disconnected = threading.Event()
    late_send_done = threading.Event()

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] != "/upload":
            await read_body(receive)
            await respond(send, 200, b"ok")
            return
        while True:
            message = await receive()
            got.append(message)
            first.set()
            if message["type"] == "http.disconnect":
                break
        disconnected.set()
        await respond(send, 200, b"too late")  # must be ignored, not raise
        late_send_done.set()

    r = start(http_app(handler))
    c = Conn(r.port)
    c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n0123456789")
    assert first.wait(DEADLINE)
    c.sock.close()
    assert disconnected.wait(DEADLINE), "the app never saw http.disconnect"
    assert late_send_done.wait(DEADLINE), "send() after the disconnect raised or hung"
    assert got[-1] == {"type": "http.disconnect"}
    requests = [m for m in got if m["type"] == "http.request"]
    assert all(m.get("more_body", False) for m in requests)
    assert b"".join(m.get("body", b"") for m in requests) == b"0123456789"
    assert get(r.port).body == b"ok"
    with Conn(r.port) as c2:
        c2.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert c2.read_response().body == b"ok"
        assert c2.read_response().body == b"ok"


def test_body_reading_pauses_while_the_app_does_not_read(start: Launcher) -> None:
    total = 16 * 1024 * 1024
    release = threading.Event()

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await until(release)
        digest = hashlib.sha256()
        while True:  # a slow reader: yields to the loop between chunks
            message = await receive()
            digest.update(message.get("body", b""))
            await asyncio.sleep(0)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        await respond(send, 200, digest.hexdigest().encode())

    r = start(http_app(handler), ServerLimits(max_body_buffer=65536))
    body = random.Random(3).randbytes(total)
    with Conn(r.port) as c:
        c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % total)
        c.sock.setblocking(False)
        view = memoryview(body)
        sent = 0
        while sent < total:
            try:
                sent += c.sock.send(view[sent : sent + 1024 * 1024])
                continue
            except BlockingIOError:
                pass
            _, writable, _ = select.select([], [c.sock], [], 0.5)
            if not writable:
                break  # stalled: the server stopped reading
        # kernel buffers hold a few MB at most; the server must not have read the rest
        assert sent < 12 * 1024 * 1024, f"the server read {sent} bytes the app never asked for"
        release.set()
        c.sock.setblocking(True)
        c.sock.settimeout(DEADLINE)
        c.send(bytes(view[sent:]))
        resp = c.read_response()
    assert resp.status == 200
    assert resp.body == hashlib.sha256(body).hexdigest().encode()


# -- Expect: 100-continue --------------------------------------------------------------------


def test_expect_100_continue_is_sent_when_the_app_first_reads(start: Launcher) -> None:
    go = threading.Event()

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await until(go)
        body, _ = await read_body(receive)
        await respond(send, 200, body)

    r = start(http_app(handler))
    with Conn(r.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        assert c.silent_for(0.3), f"sent before the app read: {bytes(c.buf)!r}"
        go.set()
        assert c.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.send(b"hello")
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == b"hello"
        # an ordinary request on the same connection gets no interim response
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
        again = c.read_response()
        assert again.status == 200
        assert again.body == b"hi"


def test_expect_100_continue_is_not_sent_when_the_app_answers_first(start: Launcher) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 417, b"no thanks")

    r = start(http_app(handler))
    with Conn(r.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        resp = c.read_response()
    assert resp.status == 417
    assert resp.body == b"no thanks"


# -- responses ---------------------------------------------------------------------------


def test_whole_response_arrives_complete_in_one_piece(start: Launcher) -> None:
    body = b"x" * 1000

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await respond(send, 200, body)

    r = start(http_app(handler))
    with Conn(r.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert c.fill()  # one recv: head and body were written together
        resp = c.read_response()
        assert c.recvs == 1, "the response arrived in several pieces"
    assert resp.status == 200
    assert resp.reason == "OK"
    assert resp.version == "HTTP/1.1"
    assert resp.headers["content-length"] == "1000"
    assert resp.body == body


def test_date_header_is_added_once_and_nothing_else_is_added(start: Launcher) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await respond(send, 201, b"made", plain(b"made", (b"x-app", b"1")))

    r = start(http_app(handler))
    resp = get(r.port)
    assert resp.status == 201
    assert resp.body == b"made"
    assert sorted(n for n, _ in resp.header_list) == sorted(
        ["content-type", "content-length", "x-app", "date"]
    )
    (date,) = resp.values("date")
    assert email.utils.parsedate_to_datetime(date).tzinfo is not None


def test_date_header_from_the_app_is_not_duplicated(start: Launcher) -> None:
    app_date = "Mon, 01 Jan 2001 00:00:00 GMT"

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await respond(send, 200, b"dated", plain(b"dated", (b"date", app_date.encode())))

    r = start(http_app(handler))
    resp = get(r.port)
    assert resp.values("date") == [app_date]


def streaming_handler(pieces: list[bytes], headers: list[tuple[bytes, bytes]]) -> App:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            await asyncio.sleep(0.001)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return handler


def test_streaming_response_without_length_is_chunked(start: Launcher) -> None:
    pieces = [b"hello ", b"", b"chunked ", b"world", b"x" * 5000]
    r = start(http_app(streaming_handler(pieces, [(b"content-type", b"text/plain")])))
    with Conn(r.port) as c:
        c.send(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 200
        assert resp.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in resp.headers
        assert "connection" not in resp.headers
        assert resp.body == b"".join(pieces)
        assert resp.raw.endswith(b"\r\n0\r\n\r\n")
        # the connection stays usable after the terminating chunk
        c.send(b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n")
        assert c.read_response().body == b"".join(pieces)


def test_streaming_response_with_content_length_is_not_chunked(start: Launcher) -> None:
    pieces = [b"abc", b"defg", b"hij"]
    headers = [(b"content-length", b"10")]
    r = start(http_app(streaming_handler(pieces, headers)))
    with Conn(r.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = c.read_response()
        assert "transfer-encoding" not in resp.headers
        assert resp.body == b"abcdefghij"
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert c.read_response().body == b"abcdefghij"


def test_streaming_response_to_http10_is_delimited_by_close(start: Launcher) -> None:
    pieces = [b"one ", b"two ", b"three"]
    r = start(http_app(streaming_handler(pieces, [(b"content-type", b"text/plain")])))
    with Conn(r.port) as c:
        c.send(b"GET / HTTP/1.0\r\n\r\n")
        resp = c.read_response()  # no length, no chunking: the body runs to the close
        assert c.eof
    assert resp.status == 200
    assert "transfer-encoding" not in resp.headers
    assert "content-length" not in resp.headers
    assert resp.body == b"one two three"


def test_head_response_has_the_headers_but_no_body(start: Launcher) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await respond(send, 200, b"hello world")  # the app sends the body even for HEAD

    r = start(http_app(handler))
    with Conn(r.port) as c:
        c.send(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n")
        head = c.read_response(method="HEAD")
        assert head.status == 200
        assert head.headers["content-length"] == "11"
        assert head.body == b""
        # a body leaked after the HEAD response would corrupt this one's status line
        c.send(b"GET /h HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == b"hello world"


@pytest.mark.parametrize(("status", "streamed"), [(204, False), (304, False), (204, True)], ids=str)
def test_no_body_statuses_send_no_body(start: Launcher, status: int, streamed: bool) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        if scope["path"] == "/ok":
            await respond(send, 200, b"ok")
            return
        await send({"type": "http.response.start", "status": status, "headers": []})
        if streamed:
            await send({"type": "http.response.body", "body": b"", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    r = start(http_app(handler))
    with Conn(r.port) as c:
        c.send(b"GET /none HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = c.read_response()
        assert resp.status == status
        assert "transfer-encoding" not in resp.headers
        # stray body bytes (e.g. a terminating chunk) would corrupt the next response
        c.send(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n")
        ok = c.read_response()
        assert ok.status == 200
        assert ok.body == b"ok"


def test_httpx_keep_alive_calls(start: Launcher) -> None:
    echo = Echo()
    r = start(echo)
    with httpx.Client(base_url=f"http://127.0.0.1:{r.port}", trust_env=False) as client:
        first = client.get("/a", params={"x": "1"})
        second = client.post("/b", content=b"payload")
    assert first.status_code == 200
    assert first.http_version == "HTTP/1.1"
    assert first.headers["x-path"] == "/a"
    assert second.status_code == 200
    assert second.content == b"payload"
    assert echo.scopes[0]["query_string"] == b"x=1"
    # both calls went over the same kept-alive connection
    assert tuple(echo.scopes[0]["client"]) == tuple(echo.scopes[1]["client"])


# -- keep-alive, close, pipelining, idle timeout -------------------------------------------


def test_keep_alive_serves_two_requests_on_one_connection(start: Launcher) -> None:
    echo = Echo()
    r = start(echo)
    with Conn(r.port) as c:
        c.send(b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n")
        one = c.read_response()
        c.send(b"POST /two HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
        two = c.read_response()
    assert (one.status, one.headers["x-path"]) == (200, "/one")
    assert (two.status, two.headers["x-path"], two.body) == (200, "/two", b"abc")
    assert "connection" not in one.headers
    assert "connection" not in two.headers
    assert len(echo.scopes) == 2


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",  # asked to close
        b"GET / HTTP/1.0\r\n\r\n",  # HTTP/1.0 closes by default
    ],
    ids=["connection-close", "http10-default"],
)
def test_a_closing_request_gets_connection_close_and_is_closed(
    start: Launcher, request_bytes: bytes
) -> None:
    r = start(Echo())
    with Conn(r.port) as c:
        c.send(request_bytes)
        resp = c.read_response()
        assert resp.status == 200
        assert resp.headers["connection"].lower() == "close"
        assert c.closed_by_server(), "the server kept the connection open"


def test_http10_keeps_alive_when_asked(start: Launcher) -> None:
    r = start(Echo())
    with Conn(r.port) as c:
        c.send(b"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        one = c.read_response()
        assert one.status == 200
        assert one.headers.get("connection", "").lower() != "close"
        c.send(b"GET /2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        two = c.read_response()
        assert two.headers["x-path"] == "/2"


def test_pipelined_requests_are_answered_in_order_one_at_a_time(start: Launcher) -> None:
    active = [0]
    most = [0]

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        active[0] += 1
        most[0] = max(most[0], active[0])
        try:
            body, _ = await read_body(receive)
            if scope["path"] == "/slow":
                await asyncio.sleep(0.2)
            await respond(send, 200, scope["path"].encode() + b":" + body)
        finally:
            active[0] -= 1

    r = start(http_app(handler))
    with Conn(r.port) as c:
        c.send(
            b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /fast HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        bodies = [c.read_response().body for _ in range(3)]
    assert bodies == [b"/slow:", b"/body:abc", b"/fast:"]
    assert most[0] == 1, "pipelined requests ran concurrently"


def test_idle_keep_alive_connection_is_closed(start: Launcher) -> None:
    r = start(Echo(), ServerLimits(keep_alive_seconds=0.3))
    with Conn(r.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 200
        assert "connection" not in resp.headers
        assert c.closed_by_server(5.0), "the idle connection was not closed"
    assert get(r.port).status == 200


# -- malformed requests and limits --------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"this is not http\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost localhost\r\n\r\n",
        b"G@T / HTTP/1.1\r\nHost: t\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        # RFC 9112 6.3: a request whose final transfer coding is not chunked -> 400, close
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nhello",
    ],
    ids=[
        "request-line",
        "header",
        "method",
        "content-length",
        "chunked-framing",
        "transfer-coding",
    ],
)
def test_malformed_request_gets_400_and_close(start: Launcher, request_bytes: bytes) -> None:
    r = start(Echo(), ServerLimits(graceful_seconds=2.0))
    with Conn(r.port, timeout=5.0) as c:
        c.send(request_bytes)
        resp = c.read_response()
        assert resp.status == 400
        assert resp.reason == "Bad Request"
        assert resp.headers["content-type"].startswith("text/plain")
        assert resp.headers["connection"].lower() == "close"
        assert c.closed_by_server()
    assert get(r.port).status == 200


@pytest.mark.parametrize("where", ["header", "target"])
def test_oversized_head_gets_431_and_close(start: Launcher, where: str) -> None:
    r = start(Echo(), ServerLimits(max_head_bytes=1024))
    big = "a" * 2000
    request = (
        f"GET / HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n"
        if where == "header"
        else f"GET /{big} HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    with Conn(r.port) as c:
        c.send(request.encode())
        resp = c.read_response()
        assert resp.status == 431
        assert resp.reason == "Request Header Fields Too Large"
        assert resp.headers["connection"].lower() == "close"
        assert c.closed_by_server()
    # a head under the limit is served
    assert get(r.port, headers=f"X-Small: {'b' * 600}\r\n").status == 200


# -- app failures --------------------------------------------------------------------------


def test_app_raising_before_start_gets_500_and_the_server_keeps_serving(
    start: Launcher, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="llmops.server")

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        if scope["path"] == "/boom":
            raise RuntimeError("boom in the app")
        await respond(send, 200, b"fine")

    r = start(http_app(handler))
    with Conn(r.port) as c:
        c.send(b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 500
        assert b"Internal Server Error" in resp.body
        assert resp.headers["content-type"].startswith("text/plain")
        assert resp.headers["connection"].lower() == "close"
        assert c.closed_by_server()
    assert get(r.port, "/fine").body == b"fine"
    records = [rec for rec in caplog.records if rec.name.startswith("llmops.server")]
    assert records, "the app's exception was not logged on llmops.server"
    mentions = [rec for rec in records if "boom in the app" in logging.Formatter().format(rec)]
    assert mentions, [rec.getMessage() for rec in records]
    assert all("\n" not in logging.Formatter().format(rec) for rec in mentions)
    assert "Traceback" not in capsys.readouterr().out


@pytest.mark.parametrize("ending", ["raise", "return"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_app_failing_after_start_truncates_and_closes(
    start: Launcher, ending: str, framing: str
) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        if scope["path"] == "/fine":
            await respond(send, 200, b"fine")
            return
        headers = [(b"content-length", b"100")] if framing == "content-length" else []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"x" * 10, "more_body": True})
        if ending == "raise":
            raise RuntimeError("failed mid-response")

    r = start(http_app(handler))
    with Conn(r.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        with pytest.raises(Truncated):
            c.read_response()
        assert c.eof
    assert get(r.port, "/fine").body == b"fine"


def test_app_returning_without_a_response_gets_500(start: Launcher) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)

    r = start(http_app(handler))
    with Conn(r.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 500
        assert b"Internal Server Error" in resp.body
        assert resp.headers["connection"].lower() == "close"
        assert c.closed_by_server()


def test_body_before_start_is_a_runtime_error_in_send(start: Launcher) -> None:
    raised: list[BaseException] = []

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        try:
            await send({"type": "http.response.body", "body": b"early", "more_body": False})
        except RuntimeError as exc:
            raised.append(exc)
            raise

    r = start(http_app(handler))
    with Conn(r.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 500
        assert b"early" not in resp.raw
        assert c.closed_by_server()
    assert len(raised) == 1


def test_second_start_is_a_runtime_error_in_send(start: Launcher) -> None:
    raised: list[BaseException] = []

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": plain(b"one")})
        try:
            await send({"type": "http.response.start", "status": 201, "headers": []})
        except RuntimeError as exc:
            raised.append(exc)
            raise

    r = start(http_app(handler))
    with Conn(r.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        data = c.read_to_close()  # a 500 or nothing, then the close; never a success
    assert len(raised) == 1
    assert data == b"" or data.startswith(b"HTTP/1.1 500 "), data[:100]


# -- graceful stop -------------------------------------------------------------------------


def probe_new_connection(port: int) -> str:
    """'refused', 'closed' (accepted, closed without a response), 'served' or 'hung'."""
    try:
        c = Conn(port, timeout=3.0)
    except ConnectionRefusedError:
        return "refused"
    with c:
        try:
            c.send(b"GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            return "closed"
        try:
            data = c.read_to_close()
        except TimeoutError:
            return "hung"
    return "closed" if data == b"" else "served"


def test_graceful_stop_lets_the_request_in_flight_finish(start: Launcher) -> None:
    entered = threading.Event()
    release = threading.Event()
    events: list[str] = []

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        if scope["path"] == "/slow":
            entered.set()
            await until(release)
            await asyncio.sleep(0.05)
            events.append("slow-finished")
            await respond(send, 200, b"slow done")
        else:
            await respond(send, 200, b"fast")

    r = start(http_app(handler, events))
    idle = Conn(r.port)
    idle.send(b"GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")
    assert idle.read_response().body == b"fast"
    slow = Conn(r.port)
    slow.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
    assert entered.wait(DEADLINE)

    r.server.stop()
    assert idle.closed_by_server(), "the idle keep-alive connection was not closed on stop"
    outcome = probe_new_connection(r.port)
    assert outcome in ("refused", "closed"), f"a new connection after stop() was {outcome}"

    release.set()
    resp = slow.read_response()
    assert resp.status == 200
    assert resp.body == b"slow done"
    assert resp.headers["connection"].lower() == "close"
    assert slow.closed_by_server()
    r.thread.join(DEADLINE)
    assert not r.thread.is_alive(), "run() did not return after the graceful stop"
    assert r.errors == []
    assert events == ["slow-finished", "lifespan-done"]
    idle.sock.close()
    slow.sock.close()


def test_graceful_timeout_cancels_requests_that_never_finish(start: Launcher) -> None:
    entered = threading.Event()
    cancelled = threading.Event()
    events: list[str] = []

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        await respond(send, 200, b"never")

    r = start(http_app(handler, events), ServerLimits(graceful_seconds=0.3))
    with Conn(r.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert entered.wait(DEADLINE)
        r.server.stop()
        r.thread.join(DEADLINE)
        assert not r.thread.is_alive(), "run() waited for a request that never finishes"
        data = c.read_to_close()
    assert not data.startswith(b"HTTP/1.1 200"), data[:100]
    assert cancelled.is_set(), "the stuck request was not cancelled"
    assert events == ["lifespan-done"]
    assert r.errors == []


# -- lifespan --------------------------------------------------------------------------------


def test_lifespan_startup_state_and_shutdown_order(start: Launcher) -> None:
    events: list[str] = []
    lifespan_scopes: list[Scope] = []
    initial_state: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            lifespan_scopes.append(scope)
            initial_state.append(dict(scope["state"]))
            message = await receive()
            assert message["type"] == "lifespan.startup"
            scope["state"]["greeting"] = "hello from startup"
            events.append("startup")
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
            events.append("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return
        events.append("request")
        await read_body(receive)
        await respond(send, 200, scope["state"]["greeting"].encode())

    r = start(app)
    assert events == ["startup"], "started before the lifespan startup completed"
    (scope,) = lifespan_scopes
    assert scope["type"] == "lifespan"
    assert scope["asgi"]["version"] == "3.0"
    assert initial_state == [{}]
    assert get(r.port).body == b"hello from startup"
    assert get(r.port).body == b"hello from startup"
    r.stop_and_join()
    assert events == ["startup", "request", "request", "shutdown"]
    assert r.errors == []


def test_lifespan_startup_failed_raises_startup_failed(start: Launcher) -> None:
    http_scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "model weights missing"})
            return
        http_scopes.append(scope)

    r = start(app, wait=False)
    r.thread.join(DEADLINE)
    assert not r.thread.is_alive(), "run() did not return after the startup failed"
    assert r.server.started is False
    (error,) = r.errors
    assert isinstance(error, StartupFailed)
    assert isinstance(error, ExternalError)
    assert error.exit_code == 2
    assert "model weights missing" in str(error)
    assert http_scopes == []
    r.errors.clear()


def test_lifespan_startup_raising_after_receive_raises_startup_failed(start: Launcher) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            raise RuntimeError("could not load the model")

    r = start(app, wait=False)
    r.thread.join(DEADLINE)
    assert not r.thread.is_alive(), "run() did not return after the startup raised"
    assert r.server.started is False
    (error,) = r.errors
    assert isinstance(error, StartupFailed)
    r.errors.clear()


def test_app_raising_on_the_lifespan_scope_is_served_anyway(start: Launcher) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            raise ValueError("lifespan not supported")
        await read_body(receive)
        await respond(send, 200, b"served")

    r = start(app)
    assert get(r.port).body == b"served"
    r.stop_and_join()
    assert r.errors == []


def test_lifespan_disabled_sends_no_lifespan_scope(start: Launcher) -> None:
    types: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        types.append(scope["type"])
        if scope["type"] == "lifespan":  # would hang startup if it were sent
            await asyncio.sleep(3600)
        await read_body(receive)
        await respond(send, 200, b"no lifespan")

    r = start(app, lifespan=False)
    assert get(r.port).body == b"no lifespan"
    r.stop_and_join()
    assert types == ["http"]


# -- back-pressure ---------------------------------------------------------------------------


def test_large_streaming_response_to_a_slow_reader_arrives_intact(start: Launcher) -> None:
    chunk, count = 65536, 320  # 20 MiB
    sent = [0]
    finished = threading.Event()
    digests: list[str] = []

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        digest = hashlib.sha256()
        rnd = random.Random(7)
        for _ in range(count):
            data = rnd.randbytes(chunk)
            digest.update(data)
            await send({"type": "http.response.body", "body": data, "more_body": True})
            sent[0] += len(data)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        digests.append(digest.hexdigest())
        finished.set()

    r = start(http_app(handler))
    with Conn(r.port) as c:
        c.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.5)  # not reading: send() must hold the app back
        assert not finished.is_set(), "the app sent 20 MiB to a client that read nothing"
        assert sent[0] < 16 * 1024 * 1024
        for _ in range(32):  # then read slowly for a while
            c.fill(65536)
            time.sleep(0.005)
        resp = c.read_response()
    assert resp.status == 200
    assert resp.headers["transfer-encoding"] == "chunked"
    assert len(resp.body) == chunk * count
    assert finished.wait(DEADLINE)
    assert hashlib.sha256(resp.body).hexdigest() == digests[0]


# -- arbitrary bytes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[Running]:
    limits = ServerLimits(keep_alive_seconds=1.0, max_head_bytes=1024, graceful_seconds=2.0)
    running = launch(Echo(), limits)
    yield running
    running.close()
    assert not running.thread.is_alive()
    assert running.errors == []


def _request_like(
    method: bytes,
    target: bytes,
    version: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> bytes:
    head = method + b" " + target + b" " + version + b"\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + body


REQUEST_LIKE = st.builds(
    _request_like,
    st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"G@T", b""]),
    st.sampled_from([b"/", b"/a?b=c", b"*", b"http://x/", b"/%zz"]) | st.binary(max_size=40),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 x", b""]),
    st.lists(
        st.tuples(
            st.sampled_from(
                [b"Host", b"Content-Length", b"Transfer-Encoding", b"Expect", b"Connection", b"X"]
            ),
            st.sampled_from([b"0", b"5", b"chunked", b"100-continue", b"close", b"-1"])
            | st.binary(max_size=30),
        ),
        max_size=6,
    ),
    st.binary(max_size=200),
)


# No shrinking: a failure here is usually a hang, and shrinking would re-run the timeout
# hundreds of times; the failing input is reported as found.
@settings(
    max_examples=50,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.binary(max_size=2048) | REQUEST_LIKE)
def test_arbitrary_bytes_never_crash_the_server(fuzz_server: Running, data: bytes) -> None:
    # the client half-closes after writing, so a server waiting for more bytes sees the end
    with Conn(fuzz_server.port, timeout=5.0) as c:
        try:
            c.send(data)
            c.sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = c.read_to_close()
    assert out == b"" or out.startswith(b"HTTP/1.1 "), out[:200]
    assert fuzz_server.thread.is_alive()
    with Conn(fuzz_server.port) as c:
        c.send(b"GET /still-alive HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = c.read_response()
    assert resp.status == 200
    assert resp.headers["x-path"] == "/still-alive"
