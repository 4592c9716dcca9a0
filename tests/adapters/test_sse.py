"""The server-sent events decoder yields the data of complete events; the line splitter
turns bytes cut anywhere into the same lines."""

from __future__ import annotations

import pytest

from llmops.adapters.sse import LineSplitter, LineTooLong, SSEDecoder


def events(lines: list[str]) -> list[str]:
    decoder = SSEDecoder()
    found = [d for line in lines if (d := decoder.feed(line)) is not None]
    tail = decoder.flush()
    return [*found, tail] if tail is not None else found


def test_data_lines_comments_and_other_fields() -> None:
    lines = [": keep-alive", "event: message", 'data: {"a": 1}', "", "id: 7", "data:[DONE]", ""]
    assert events(lines) == ['{"a": 1}', "[DONE]"]


def test_multi_line_data_and_crlf() -> None:
    assert events(["data: one\r", "data: two\r", "\r"]) == ["one\ntwo"]


def test_an_event_without_its_blank_line_is_flushed_at_the_end() -> None:
    assert events(["data: last"]) == ["last"]
    assert events(["", "", "retry: 10"]) == []


STREAM = (
    b": comment\r\n"
    b'data: {"d": "caf\xc3\xa9 \xf0\x9f\x98\x80"}\r\n\r\n'  # CRLF, multi-byte UTF-8
    b"data: one\rdata: two\r\r"  # lone CRs
    b"data: [DONE]\n\n"
)
EVENTS = ['{"d": "café 😀"}', "one\ntwo", "[DONE]"]


def split_events(chunks: list[bytes]) -> list[str]:
    lines, decoder = LineSplitter(), SSEDecoder()
    found = [
        event
        for chunk in chunks
        for line in lines.feed(chunk)
        if (event := decoder.feed(line)) is not None
    ]
    last = lines.flush()
    if last is not None:
        decoder.feed(last)
    tail = decoder.flush()
    return [*found, tail] if tail is not None else found


def test_bytes_cut_anywhere_give_the_same_events() -> None:
    assert split_events([STREAM]) == EVENTS
    for i in range(len(STREAM) + 1):
        assert split_events([STREAM[:i], STREAM[i:]]) == EVENTS, i
        for j in range(i, min(i + 4, len(STREAM)) + 1):
            assert split_events([STREAM[:i], STREAM[i:j], STREAM[j:]]) == EVENTS, (i, j)
    assert split_events([bytes([b]) for b in STREAM]) == EVENTS


def test_the_last_line_without_a_break_is_flushed() -> None:
    lines = LineSplitter()
    assert lines.feed(b"data: a\ndata: b") == ["data: a"]
    assert lines.flush() == "data: b" and lines.flush() is None


def test_bad_utf8_is_replaced() -> None:
    assert LineSplitter().feed(b"data: \xff\n") == ["data: \ufffd"]


def test_an_endless_line_is_refused() -> None:
    lines = LineSplitter(max_line_bytes=10)
    assert lines.feed(b"0123456789\n") == ["0123456789"]
    lines.feed(b"01234")
    with pytest.raises(LineTooLong, match="over 10 bytes"):
        lines.feed(b"567890")
