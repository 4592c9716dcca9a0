"""HTTP plumbing: whole replies as two ASGI messages, request ids, and the request body
read within its limits (the server tests cover every status end to end; that a reply
leaves the server in one write is tested in tests/adapters/test_asgi_server_wire.py)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from llmops.runtime.httpio import HttpProblem, Message, Reply, read_json, request_id


def test_a_reply_is_one_start_and_one_body_message() -> None:
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


def test_a_reply_uses_the_servers_respond_when_its_send_has_one() -> None:
    """The same status, headers and body as the two messages, in one call, and no message."""
    responded: list[tuple[int, list[tuple[bytes, bytes]], bytes]] = []

    class Send:
        async def __call__(self, message: Message) -> None:
            raise AssertionError("a message was sent, not one respond call")

        def llmops_respond(
            self, status: int, headers: list[tuple[bytes, bytes]], body: bytes
        ) -> None:
            responded.append((status, headers, body))

    asyncio.run(Reply(201, b"{}", [(b"retry-after", b"2")]).send(Send(), (b"x-request-id", b"r")))
    assert responded == [
        (
            201,
            [
                (b"retry-after", b"2"),
                (b"content-length", b"2"),
                (b"content-type", b"application/json"),
                (b"x-request-id", b"r"),
            ],
            b"{}",
        )
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


def test_a_forked_child_makes_other_request_ids_than_its_parent() -> None:
    import os

    request_id(None)  # the parent has a batch of ids in hand
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, ",".join(request_id(None) for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = set(os.read(read, 4096).decode().split(","))
    os.close(read)
    parent = {request_id(None) for _ in range(3)}
    assert len(child) == 3 and not child & parent
