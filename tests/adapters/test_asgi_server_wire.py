"""What the gateway's server writes, write by write: a whole response (start and one body
message) is one transport write, with the connection closed after it when it must be,
and the gateway's ``Reply`` leaves in one write too. A transport that records its writes
stands in for the socket; the end-to-end behaviour over real sockets is in
tests/adapters/test_asgi_server.py."""

from __future__ import annotations

import asyncio
from typing import Any

from llmops.adapters.asgi_server import AsgiServer, Message, Receive, Send, _Connection
from llmops.runtime.httpio import HttpProblem, Reply


class Wire:
    """A transport that records every write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )


def exchange(app: Any, *requests: bytes) -> Wire:
    """Feed ``requests`` to one connection of a server running ``app``; what it wrote."""

    async def main() -> Wire:
        wire = Wire()
        conn = _Connection(AsgiServer(app), asyncio.get_running_loop())
        conn.connection_made(wire)  # type: ignore[arg-type]
        for raw in requests:
            conn.data_received(raw)
            for _ in range(20):  # let the app's task run to its end
                await asyncio.sleep(0)
        return wire

    return asyncio.run(main())


def replying(reply: Reply) -> Any:
    async def app(scope: Message, receive: Receive, send: Send) -> None:
        await receive()
        await reply.send(send, (b"x-request-id", b"r1"))

    return app


GET = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"


def test_a_reply_leaves_in_one_write_and_the_connection_stays_open() -> None:
    wire = exchange(replying(Reply.json({"ok": True})), GET, GET)
    assert len(wire.writes) == 2, "one write per response"
    for data in wire.writes:
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert (
            b"content-length: 11\r\ncontent-type: application/json\r\nx-request-id: r1\r\n" in data
        )
        assert b"\r\ndate: " in data and data.endswith(b'\r\n\r\n{"ok":true}')
    assert not wire.closed


def test_one_write_also_when_the_connection_closes_or_the_body_is_dropped() -> None:
    problem = replying(HttpProblem(404, "not_found", "no").reply())
    closing = exchange(problem, b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert len(closing.writes) == 1 and closing.closed, "written, then closed"
    assert b"connection: close\r\n" in closing.writes[0] and closing.writes[0].endswith(b"}")
    head = exchange(replying(Reply.json({"ok": True})), b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n")
    assert len(head.writes) == 1 and head.writes[0].endswith(b"\r\n\r\n"), "HEAD: no body"
    assert b"content-length: 11\r\n" in head.writes[0]


def test_a_streamed_response_writes_its_head_with_the_first_piece() -> None:
    async def app(scope: Message, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for piece in (b"one", b"two"):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    wire = exchange(app, GET)
    assert len(wire.writes) == 3
    assert wire.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked\r\n" in wire.writes[0]
    assert wire.writes[0].endswith(b"\r\n\r\n3\r\none\r\n")
    assert wire.writes[1:] == [b"3\r\ntwo\r\n", b"0\r\n\r\n"]


def test_response_headers_with_cr_or_lf_are_refused_before_anything_is_written() -> None:
    async def app(scope: Message, receive: Receive, send: Send) -> None:
        headers = [(b"x-evil", b"a\r\nset-cookie: b")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hi"})

    wire = exchange(app, GET)
    assert len(wire.writes) == 1 and wire.writes[0].startswith(b"HTTP/1.1 500 ")
    assert b"set-cookie" not in wire.writes[0] and wire.closed


def test_two_receivers_both_hear_that_the_response_ended() -> None:
    heard: list[str] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        await receive()  # the whole (empty) body

        async def listen(name: str) -> None:
            heard.append(f"{name}:{(await receive())['type']}")

        listeners = [asyncio.create_task(listen(n)) for n in ("a", "b")]
        await asyncio.sleep(0)
        await Reply.json({"ok": True}).send(send)
        await asyncio.gather(*listeners)

    exchange(app, GET)
    assert sorted(heard) == ["a:http.disconnect", "b:http.disconnect"]


# -- the fast paths, each against the path it stands in for ------------------------------


def _masked(writes: list[bytes]) -> list[bytes]:
    """The writes with the date header's value blanked (two runs may straddle a second)."""
    masked = []
    for data in writes:
        at = data.find(b"\r\ndate: ")
        if at >= 0:
            end = data.index(b"\r\n", at + 2)
            data = data[: at + 8] + b"*" + data[end:]
        masked.append(data)
    return masked


def _two_messages(reply: Reply) -> Any:
    """An app sending ``reply`` through a plain send function: the server's ``llmops_respond`` is
    hidden, so ``Reply.send`` sends the two ASGI messages."""

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        async def plain_send(message: Message) -> None:
            await send(message)

        await receive()
        await reply.send(plain_send, (b"x-request-id", b"r1"))

    return app


REQUESTS = [
    GET,
    b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /x HTTP/1.0\r\n\r\n",
    b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi",
]
REPLIES = [
    Reply.json({"ok": True}),
    Reply(204, b"", content_type=None),
    Reply(304, b""),
    Reply(599, b"odd status"),
    Reply(307, b"", [(b"location", b"/y")], content_type=None),
    Reply(200, b"{}", [(b"Connection", b"close")]),
    Reply(200, b"{}", [(b"date", b"Thu, 01 Jan 2026 00:00:00 GMT")]),
    Reply(200, b"{}", [(b"transfer-encoding", b"chunked")]),
    Reply(200, b"{}", [(b"x-evil", b"a\r\nset-cookie: b")]),
    Reply(200, b"{}", [(b"content-length", b"1")]),  # a second, wrong length: longer body
    Reply(200, b"{}", [(b"content-length", b"9")]),  # ... and a shorter one
]


def test_respond_writes_what_the_two_messages_write() -> None:
    for request in REQUESTS:
        for reply in REPLIES:
            fast = exchange(replying(reply), request, GET)
            slow = exchange(_two_messages(reply), request, GET)
            assert _masked(fast.writes) == _masked(slow.writes), (request, reply.headers)
            assert fast.closed == slow.closed, (request, reply.headers)


RESPONSES: list[tuple[int, list[tuple[bytes, bytes]], bytes]] = [
    (200, [(b"content-length", b"2")], b"ok"),
    (200, [(b"content-length", b"1")], b"ok"),  # longer than its length: refused
    (200, [(b"content-length", b"5")], b"ok"),  # shorter: the connection cannot be reused
    (200, [], b"ok"),  # no length: chunked (HTTP/1.1) or ended by the close (HTTP/1.0)
    (200, [(b"content-length", b"x")], b"ok"),
    (200, [(b"x-a", b"1"), (b"Content-Type", b"text/plain")], b""),
]


def test_respond_with_any_headers_writes_what_the_two_messages_write() -> None:
    for request in REQUESTS:
        for status, headers, body in RESPONSES:

            async def fast_app(scope: Message, receive: Receive, send: Send) -> None:
                await receive()
                send.llmops_respond(status, headers, body)  # type: ignore[attr-defined]  # noqa: B023

            async def slow_app(scope: Message, receive: Receive, send: Send) -> None:
                await receive()
                await send({"type": "http.response.start", "status": status, "headers": headers})  # noqa: B023
                await send({"type": "http.response.body", "body": body})  # noqa: B023

            fast = exchange(fast_app, request, GET)
            slow = exchange(slow_app, request, GET)
            assert _masked(fast.writes) == _masked(slow.writes), (request, headers, body)
            assert fast.closed == slow.closed, (request, headers, body)


def test_respond_is_what_reply_uses_and_it_keeps_the_checks_of_the_messages() -> None:
    seen: list[str] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        respond = getattr(send, "llmops_respond", None)
        assert respond is not None, "the server offers respond"
        respond(200, [(b"content-length", b"2")], b"ok")
        try:
            respond(200, [], b"")
        except RuntimeError as exc:
            seen.append(str(exc))
        try:
            await send({"type": "http.response.body", "body": b"late"})
        except RuntimeError as exc:
            seen.append(str(exc))

    wire = exchange(app, GET)
    assert len(wire.writes) == 1 and wire.writes[0].endswith(b"\r\n\r\nok")
    assert seen == [
        "ASGI message 'http.response.start' sent twice",
        "ASGI message 'http.response.body' sent after the response ended",
    ]


def test_two_pipelined_requests_split_anywhere_each_get_their_own_scope() -> None:
    """Method, target and version of each, wherever the reads split them (the scope is a
    copy of the connection's, the path split cached per connection)."""
    seen: list[str] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        seen.append(f"{scope['method']} {scope['raw_path'].decode()} {scope['http_version']}")
        await receive()
        await Reply(200, b"").send(send)

    cases = [
        (
            b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /two HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
            ["GET /one 1.1", "POST /two 1.0"],
        ),
        (
            b"GET /one HTTP/1.0\r\nConnection: keep-alive\r\n\r\nDELETE /two HTTP/1.1\r\n\r\n",
            ["GET /one 1.0", "DELETE /two 1.1"],
        ),
        (b"\r\nGET /one HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\n\r\n", ["GET /one 1.1", "GET /two 1.1"]),
        (  # a body that looks like a request line, before an HTTP/1.0 request
            b"PUT /one HTTP/1.1\r\nContent-Length: 19\r\n\r\nGET /two HTTP/1.1\r\n"
            b"GET /two HTTP/1.0\r\n\r\n",
            ["PUT /one 1.1", "GET /two 1.0"],
        ),
    ]
    for raw, expected in cases:
        for cut in range(len(raw) + 1):
            seen.clear()
            wire = exchange(app, *[part for part in (raw[:cut], raw[cut:]) if part])
            assert seen == expected, (raw, cut)
            assert len(wire.writes) == 2, (raw, cut)


def test_the_path_split_cached_per_connection_follows_each_target() -> None:
    seen: list[tuple[str, bytes, bytes]] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        seen.append((scope["path"], scope["raw_path"], scope["query_string"]))
        await receive()
        await Reply(200, b"").send(send)

    targets = [b"/a%20b?q=1", b"/a%20b?q=1", b"/a%20b?q=2", b"/a%20b", b"/c", b"/c", b"*"]
    exchange(app, *[b"OPTIONS %s HTTP/1.1\r\nHost: t\r\n\r\n" % target for target in targets])
    assert seen == [
        ("/a b", b"/a%20b", b"q=1"),
        ("/a b", b"/a%20b", b"q=1"),
        ("/a b", b"/a%20b", b"q=2"),
        ("/a b", b"/a%20b", b""),
        ("/c", b"/c", b""),
        ("/c", b"/c", b""),
        ("*", b"*", b""),
    ]
