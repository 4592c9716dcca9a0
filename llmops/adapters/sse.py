"""Server-sent events: the ``data:`` payloads of a stream; called by the OpenAI client.

Pure and incremental: feed :class:`LineSplitter` the bytes of a response as they arrive
and :class:`SSEDecoder` the lines it returns. Follows the WHATWG event-stream rules that
matter for chat completions: lines end with CRLF, LF or a lone CR (UTF-8, undecodable
bytes replaced); ``data:`` lines (one optional space after the colon), multi-line data
joined with ``\\n``, an empty line ends an event, ``:`` lines are comments, other fields
(``event``, ``id``, ``retry``) ignored.
"""

from __future__ import annotations

#: Longest line :class:`LineSplitter` holds while waiting for its end (16 MiB).
MAX_LINE_BYTES = 16 * 1024 * 1024


class LineTooLong(ValueError):
    """A stream line grew past the splitter's limit without ending."""


class LineSplitter:
    """Turns chunks of bytes, cut anywhere, into complete lines (without line breaks)."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max = max_line_bytes
        self._parts: list[bytes] = []  # the start of an unfinished line
        self._size = 0
        self._after_cr = False  # the last chunk ended with CR: a leading LF belongs to it

    def feed(self, data: bytes) -> list[str]:
        """The lines that ``data`` completes, in order."""
        if self._after_cr:
            self._after_cr = False
            if data[:1] == b"\n":
                data = data[1:]
        if b"\r" in data:
            self._after_cr = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in data:
            self._hold(data)
            return []
        pieces = data.split(b"\n")
        tail = pieces.pop()
        if self._parts:
            pieces[0] = b"".join((*self._parts, pieces[0]))
            self._parts.clear()
            self._size = 0
        self._hold(tail)
        return [piece.decode("utf-8", "replace") for piece in pieces]

    def flush(self) -> str | None:
        """The unfinished last line at the end of the stream, if any."""
        if not self._parts:
            return None
        line = b"".join(self._parts).decode("utf-8", "replace")
        self._parts.clear()
        self._size = 0
        return line

    def _hold(self, data: bytes) -> None:
        if not data:
            return
        self._size += len(data)
        if self._size > self._max:
            raise LineTooLong(f"a line of the event stream is over {self._max:,} bytes")
        self._parts.append(data)


class SSEDecoder:
    """Turns lines into the data of complete events."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        """Take one line (without its line break); the event's data when ``line`` ends one."""
        line = line.rstrip("\r")
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def flush(self) -> str | None:
        """The data of a pending event (at end of stream), if any."""
        if not self._data:
            return None
        data = "\n".join(self._data)
        self._data = []
        return data
