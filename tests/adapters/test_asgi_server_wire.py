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
