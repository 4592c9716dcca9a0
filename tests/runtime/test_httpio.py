"""HTTP plumbing: whole replies leave uvicorn in one write, request ids, and the request
body read within its limits (the server tests cover every status end to end)."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from llmops.runtime.httpio import HttpProblem, Message, Reply, read_json, request_id


class Wire:
    """A transport that records what uvicorn writes to the socket."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def uvicorn_cycle(wire: Wire, method: str = "POST", keep_alive: bool = True) -> Any:
    """uvicorn's own per-request object (what hands the app its ``send``)."""
    scope: dict[str, Any] = {"type": "http", "method": method, "headers": []}
    return RequestResponseCycle(
        scope=scope,  # type: ignore[arg-type]
        transport=wire,  # type: ignore[arg-type]
        flow=FlowControl(wire),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=[(b"date", b"today")],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )


def test_a_reply_leaves_uvicorn_in_one_write() -> None:
    async def main() -> Wire:
        wire = Wire()
        cycle = uvicorn_cycle(wire)
        await Reply.json({"ok": True}).send(cycle.send, (b"x-request-id", b"r1"))
        assert cycle.response_complete and cycle.transport is wire
        return wire

    wire = asyncio.run(main())
    assert len(wire.writes) == 1
    (data,) = wire.writes
    assert data.startswith(b"HTTP/1.1 200 OK\r\ndate: today\r\ncontent-length: 11\r\n")
    assert b"content-type: application/json\r\nx-request-id: r1\r\n\r\n" in data
    assert data.endswith(b'\r\n\r\n{"ok":true}')


def test_one_write_also_when_the_connection_closes_or_the_body_is_dropped() -> None:
    async def main() -> tuple[Wire, Wire]:
        closing, head = Wire(), Wire()
        await (
            HttpProblem(404, "not_found", "no")
            .reply()
            .send(uvicorn_cycle(closing, keep_alive=False).send)
        )
        await Reply.json({"ok": True}).send(uvicorn_cycle(head, method="HEAD").send)
        return closing, head

    closing, head = asyncio.run(main())
    assert len(closing.writes) == 1 and closing.closed, "written, then closed"
    assert b"connection: close" in closing.writes[0] and closing.writes[0].endswith(b"}")
    assert len(head.writes) == 1 and head.writes[0].endswith(b"\r\n\r\n"), "HEAD: no body"


def test_other_servers_get_the_two_asgi_messages() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(Reply(201, b"{}", [(b"retry-after", b"2")]).send(send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 201
    assert sent[0]["headers"] == [
        (b"retry-after", b"2"),
        (b"content-length", b"2"),
        (b"content-type", b"application/json"),
    ]


def test_request_ids_are_honoured_when_sane_and_otherwise_new_and_unique() -> None:
    assert request_id("abc-1.2:3_x") == "abc-1.2:3_x"
    made = {request_id(None) for _ in range(1000)} | {request_id("no spaces please")}
    assert len(made) == 1001
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in made)


def body(*chunks: bytes) -> Any:
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return receive


def read(receive: Any, content_type: str | None = "application/json", **kw: Any) -> Any:
    return asyncio.run(read_json(receive, content_type, kw.get("length"), kw.get("limit", 100)))


def test_bodies_in_pieces_within_the_limit() -> None:
    assert read(body(b'{"a":', b" 1", b"}")) == {"a": 1}
    assert read(body(b'{"a": 1}'), "application/vnd.x+json; charset=utf-8") == {"a": 1}
    with pytest.raises(HttpProblem) as caught:
        read(body(b"{", b" " * 60, b" " * 60, b"}"))
    assert caught.value.status == 413
    with pytest.raises(HttpProblem) as caught:
        read(body(b"{}"), length="101")
    assert caught.value.status == 413
    with pytest.raises(HttpProblem) as caught:
        read(body(b"{}"), "text/json")
    assert caught.value.status == 415
