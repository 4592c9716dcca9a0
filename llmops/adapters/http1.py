"""A lean asyncio HTTP/1.1 client: send a request, get the status, headers and body (whole,
or streamed); used by ``llmops.adapters.openai_client`` (model calls of ``llmops eval``
and of the runtime gateway) and ``llmops.adapters.probe``.

One concern, done with the standard library only (asyncio, ssl; certifi's CA bundle when
installed). The model client spends most of an eval case's CPU in its HTTP stack, and
aiohttp's client costs about twice what this one does (``benchmarks/bench_client.py``):
each request is built with one join of precomputed header bytes and written once; an
``asyncio.Protocol`` keeps what arrives in one buffer; a reply head is validated with one
compiled pattern and its framing fields picked out with another (the other headers are
parsed when first read), the body cut out with bytes methods. A bare ``StreamReader``
keep-alive loop without pool, limits or header checks measured about as cheap (within
~5%); the protocol keeps idle-close detection, flow control and the stale-connection
check in its callbacks.

:class:`HttpClient` keeps one connection pool per event loop and per origin (scheme,
host, port, and the proxy), opened lazily on that loop's first request:

- keep-alive; at most ``max_connections`` connections per origin, callers beyond that
  wait in line (first come, first served); idle connections are reused last-in first-out
  and closed after ``keepalive_expiry`` seconds or when the server closes them;
- a connection goes back to the pool only when its response was read completely and
  neither side said ``Connection: close`` (nor the framing required a close);
- a pooled connection the server closed while it was idle (end of stream or reset when
  the request is written, or before the first byte of the response) is replaced by a
  fresh one and the request sent again, once; never once any byte of a response arrived;
- the pools of a loop that ends (``asyncio.run`` returns, an ``asyncio.Runner`` closes)
  are closed as the loop shuts down its async generators, so one client serves several
  loops and leaks nothing; ``aclose()`` closes every pool, after which requests are refused.

Responses are framed by Content-Length, chunked transfer coding (extensions ignored,
trailers parsed), or the end of the connection; replies to HEAD and 1xx/204/304 replies
have no body, interim 1xx replies are skipped. The status line and headers may take
``max_head_bytes`` (64 KiB), a body read whole ``max_body_bytes`` (64 MiB). Header names
are case-insensitive, repeated fields are kept (``Headers.get_all``), obsolete line
folding, bare CR or LF and control characters are rejected.

TLS is verified by default (:func:`default_ssl_context`: ``SSL_CERT_FILE``/``SSL_CERT_DIR``
when set, else certifi's bundle, else the system store) with SNI; pass ``ssl_context`` to
trust a private CA. Proxies come from ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` and
``NO_PROXY`` as they are when the client is built (``proxies=`` overrides, ``{}`` turns
them off): plain-http requests go to the proxy in absolute form, https ones through a
``CONNECT`` tunnel, then TLS to the origin; credentials in the proxy URL are sent as
``Proxy-Authorization: Basic``. Only ``http://`` proxies are supported.

Every failure is an :class:`HttpError`: :class:`ConnectFailed` (DNS, refused, TLS, the
proxy), :class:`ConnectionLost` (the server hung up before the response ended),
:class:`ProtocolError` (bytes that are not HTTP/1.x; :class:`TooLarge` past a limit),
:class:`HttpTimeout` (also a ``TimeoutError``), :class:`InvalidURL` (also a ``ValueError``).
Messages name the origin and what happened, never a header value or URL credentials.

A :class:`StreamResponse` must be closed (``async with`` or ``aclose()``): it holds its
connection until then.

Not supported: HTTP/2, content codings (no ``Accept-Encoding`` is sent, so servers answer
identity), redirects, cookies, request bodies streamed from the caller, https proxies,
a DNS cache (names are resolved when a connection is opened), bare-LF line endings.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import os
import re
import ssl
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Self, TypeVar

T = TypeVar("T")

_get_running_loop: Final = asyncio.get_running_loop
_current_task: Final = asyncio.current_task

#: Longest status line + header section accepted (and longest chunked trailer section).
MAX_HEAD_BYTES: Final = 64 * 1024
#: Largest body :meth:`HttpClient.request` reads whole.
MAX_BODY_BYTES: Final = 64 * 1024 * 1024
#: A streamed body pauses the socket while more than this is buffered, unread.
STREAM_BUFFER_BYTES: Final = 1024 * 1024
#: Longest chunk-size line (size and extensions).
MAX_CHUNK_LINE: Final = 4096

_TCHAR: Final = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEX: Final = b"0123456789abcdefABCDEF"
# control characters not allowed anywhere in a response head (CR and LF are checked apart)
_BAD_HEAD: Final = bytes([*range(0, 9), 11, 12, *range(14, 32), 127])
_NO_BODY_STATUS: Final = frozenset({204, 304})


# -- errors -------------------------------------------------------------------------------


class HttpError(Exception):
    """A request that failed in the transport; the message says what happened (it never
    carries a header value or URL credentials)."""


class InvalidURL(HttpError, ValueError):
    """A URL this client cannot send to."""


class ConnectFailed(HttpError):
    """No connection: the name did not resolve, nothing listens, TLS failed, or the proxy
    refused the tunnel. ``cause`` is the underlying ``OSError`` when there is one."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class ProxyRefused(ConnectFailed):
    """The proxy answered the ``CONNECT`` with something other than a 2xx."""


class ConnectionLost(HttpError):
    """The connection ended (closed or reset) before the response did."""


class ProtocolError(HttpError):
    """The server sent bytes that are not a valid HTTP/1.x response."""


class TooLarge(ProtocolError):
    """The response head or body is over the client's limit."""


class HttpTimeout(HttpError, TimeoutError):
    """No connection, or no (complete) response, within the time allowed."""


# -- headers ------------------------------------------------------------------------------


class Headers(Mapping[str, str]):
    """Response header fields: case-insensitive lookups; a repeated field reads as its
    values joined with ``", "`` (``get_all`` gives them one by one, e.g. Set-Cookie).

    A response's headers are parsed on first use (they were validated on arrival)."""

    __slots__ = ("_index", "_items", "_raw")

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._raw = b""
        self._items: list[tuple[str, str]] | None = items if items is not None else []
        self._index: dict[str, str] | None = _index(self._items)

    @classmethod
    def _lazy(cls, raw: bytes) -> Headers:
        """From validated field lines, each starting with CRLF (parsed when first used)."""
        self = cls.__new__(cls)
        self._raw = raw
        self._items = self._index = None
        return self

    def _fields(self) -> dict[str, str]:
        if self._index is None:
            items = []
            for line in self._raw.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                items.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
            self._items = items
            self._index = _index(items)
        return self._index

    def __getitem__(self, name: str) -> str:
        return self._fields()[name.lower()]

    def get(self, name: str, default: Any = None) -> Any:
        return self._fields().get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields()

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())

    def __len__(self) -> int:
        return len(self._fields())

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in the order received."""
        key = name.lower()
        return [value for field_name, value in self.raw() if field_name.lower() == key]

    def raw(self) -> list[tuple[str, str]]:
        """The fields as received: (name in its original case, value)."""
        self._fields()
        assert self._items is not None
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self.raw()!r})"


def _index(items: list[tuple[str, str]]) -> dict[str, str]:
    index: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        index[key] = f"{index[key]}, {value}" if key in index else value
    return index


def _show(data: bytes | bytearray, limit: int = 60) -> str:
    """A short printable quote of unexpected bytes, for error messages."""
    text = repr(bytes(data[:limit]))
    return text + ("…" if len(data) > limit else "")


_TOKEN_RE: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_VCHAR_RE: Final = rb"[^\x00-\x08\x0a-\x1f\x7f]"  # field-vchar, SP and HTAB
#: A whole response head: status line, then field lines (each ``CRLF name:value``);
#: no obsolete folding, no bare CR or LF, no control characters but HTAB.
_HEAD: Final = re.compile(
    rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: (" + _VCHAR_RE + rb"*+))?"
    rb"((?:\r\n" + _TOKEN_RE + rb":" + _VCHAR_RE + rb"*+)*+)"
)
#: The fields that frame the body, in a validated head.
_FRAMING: Final = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection):(" + _VCHAR_RE + rb"*+)", re.IGNORECASE
)


def _parse_head(head: bytes, no_body: bool = False) -> tuple[int, str, Headers, int, int, bool]:
    """``(status, reason, headers, body mode, length, reusable)`` of a response head
    (``no_body``: the reply to a HEAD request); ``length`` counts in the Content-Length
    mode only; ``reusable``: the connection may serve another request after the body."""
    match = _HEAD.fullmatch(head)
    if match is None:
        _diagnose(head)
        raise ProtocolError(f"the response head is malformed: {_show(head)}")
    version, code, reason, fields = match.groups()
    status = int(code)
    framing = _FRAMING.findall(fields)
    if len(framing) == 1 and version == b"1" and not no_body and status >= 200:
        # the usual head: HTTP/1.1, a body framed by one plain Content-Length, keep-alive
        name, value = framing[0]
        value = value.strip(b" \t")
        if (
            value.isdigit()
            and len(value) <= 18
            and name.lower() == b"content-length"
            and status not in _NO_BODY_STATUS
        ):
            text = reason.decode("latin-1") if reason else ""
            return status, text, Headers._lazy(fields), _LENGTH, int(value), True
    length = coding = connection = None
    for name, value in framing:
        name = name.lower()
        value = value.strip(b" \t")
        if name == b"content-length":
            length = value if length is None else length + b"," + value
        elif name == b"transfer-encoding":
            coding = value if coding is None else coding + b"," + value
        else:
            connection = value if connection is None else connection + b"," + value
    http11 = match[1] == b"1"
    if connection is None:
        reuse = http11
    else:
        tokens = {token.strip().lower() for token in connection.split(b",")}
        reuse = b"close" not in tokens and (http11 or b"keep-alive" in tokens)
    mode = _LENGTH
    size = 0
    if no_body or status < 200 or status in _NO_BODY_STATUS:
        mode = _NONE
    elif coding is not None:
        codings = [c.strip().lower() for c in coding.split(b",") if c.strip()]
        if codings != [b"chunked"]:
            raise ProtocolError(
                f"the response uses a transfer coding this client does not decode: {_show(coding)}"
            )
        mode = _CHUNKED
        if length is not None:  # with Content-Length as well the message is suspect
            reuse = False
    elif length is None:
        mode = _CLOSE
        reuse = False
    else:
        size = _content_length(length)
    headers = Headers._lazy(fields)
    return status, (reason or b"").decode("latin-1"), headers, mode, size, reuse


def _diagnose(head: bytes) -> None:
    """Raise the ProtocolError that says what is wrong with an invalid response head."""
    lines = _check_head(head)
    line = lines[0]
    if (
        len(line) < 12
        or line[:7] != b"HTTP/1."
        or line[7] not in b"01"
        or line[8] != 32
        or not line[9:12].isdigit()
        or (len(line) > 12 and line[12] != 32)
        or line[9] == 48  # 0xx
    ):
        raise ProtocolError(
            f"the response does not start with an HTTP/1.x status line: {_show(line)}"
        )
    _parse_fields(lines, 1)


def _parse_fields(lines: list[bytes], start: int) -> Headers:
    """Header field lines (no line breaks) from ``lines[start:]``, validated."""
    items: list[tuple[str, str]] = []
    tchar = _TCHAR
    for position in range(start, len(lines)):
        line = lines[position]
        name, sep, value = line.partition(b":")
        if not sep or not name or name.translate(None, tchar):
            if line[:1] in (b" ", b"\t"):
                raise ProtocolError("the response uses obsolete header line folding")
            raise ProtocolError(f"the response has a malformed header line: {_show(line)}")
        items.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
    return Headers(items)


def _check_head(head: bytes) -> list[bytes]:
    """The lines of a response head (or trailer section) without its final CRLF CRLF."""
    lines = head.split(b"\r\n")
    breaks = len(lines) - 1
    if head.count(b"\n") != breaks or head.count(b"\r") != breaks:
        raise ProtocolError("the response head has a bare CR or LF line break")
    if len(head.translate(None, _BAD_HEAD)) != len(head):
        raise ProtocolError("the response head contains control characters")
    return lines


# -- framing ------------------------------------------------------------------------------

_LENGTH, _CHUNKED, _CLOSE, _NONE = 0, 1, 2, 3
# chunked decoder states
_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = 0, 1, 2, 3, 4


def _content_length(value: bytes) -> int:
    if b"," in value:  # the same length sent more than once is allowed (RFC 9110 §8.6)
        values = {part.strip() for part in value.split(b",")}
        if len(values) != 1:
            raise ProtocolError(
                f"the response has conflicting Content-Length values: {_show(value)}"
            )
        value = values.pop()
    if not value.isdigit() or len(value) > 18:
        raise ProtocolError(f"the response has an invalid Content-Length: {_show(value)}")
    return int(value)


# -- connections --------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One socket: bytes received are kept in ``buf``; readers wait on ``wait()``."""

    __slots__ = (
        "buf",
        "cap",
        "closing",
        "drain_waiter",
        "eof",
        "error",
        "got_data",
        "idle_since",
        "in_pool",
        "loop",
        "lost",
        "lost_waiter",
        "paused",
        "pool",
        "reused",
        "tls",
        "transport",
        "waiter",
        "write_paused",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: _Pool | None, cap: int) -> None:
        self.loop = loop
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.cap = cap
        self.waiter: asyncio.Future[None] | None = None
        self.eof = False  # no more bytes will come (end of stream, or the connection is gone)
        self.lost = False
        self.error: BaseException | None = None
        self.got_data = False  # any byte since the current request was sent
        self.reused = False  # served a request before
        self.in_pool = False
        self.idle_since = 0.0
        self.paused = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.lost_waiter: asyncio.Future[None] | None = None
        self.tls = False
        self.closing = False

    # protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        self.got_data = True
        if self.in_pool:  # nobody asked: the connection is not in a known state any more
            self.close()
            return
        if len(buf) > self.cap and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.eof = True
        self.error = exc
        self._wake()
        drain = self.drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)
        if self.lost_waiter is not None and not self.lost_waiter.done():
            self.lost_waiter.set_result(None)
        if self.in_pool and self.pool is not None:
            self.pool._lost_idle(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        drain = self.drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)

    # used by requests

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def wait(self) -> asyncio.Future[None]:
        """A future that resolves when more bytes arrive or the stream ends."""
        if self.paused:
            self.paused = False
            if self.transport is not None:
                self.transport.resume_reading()
        waiter = self.loop.create_future()
        self.waiter = waiter
        return waiter

    async def send(self, data: bytes) -> None:
        self.got_data = False
        assert self.transport is not None
        self.transport.write(data)
        if self.write_paused:
            await self.drain()

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        while self.write_paused and not self.lost:
            self.drain_waiter = self.loop.create_future()
            await self.drain_waiter
            self.drain_waiter = None

    async def read_head(self, limit: int) -> bytes:
        """The next response head (without its blank line)."""
        buf = self.buf
        start = 0
        while True:
            end = buf.find(b"\r\n\r\n", start)
            if end >= 0:
                break
            if len(buf) > limit:
                raise TooLarge(f"the response head is over {limit:,} bytes")
            if self.eof:
                raise self.lost_error("before the response head ended" if buf else None)
            start = max(0, len(buf) - 3)
            await self.wait()
        if end > limit:
            raise TooLarge(f"the response head is over {limit:,} bytes")
        head = bytes(buf[:end])
        del buf[: end + 4]
        return head

    def lost_error(self, when: str | None) -> ConnectionLost:
        """The error for a connection that ended too soon; ``when`` None: before any byte."""
        if self.closing:
            how = "was closed by this client"
        elif self.error is not None:
            how = "was reset"
        else:
            how = "was closed by the server"
        if when is None:
            when = "before any byte of the response"
        return ConnectionLost(f"the connection {how} {when}")

    def close(self) -> None:
        """Close now (discarding unsent and unread bytes)."""
        self.closing = True
        if self.transport is not None and not self.lost:
            self.transport.abort()

    def shut(self) -> None:
        """Close gracefully (plain TCP: FIN after pending writes; TLS: at once)."""
        self.closing = True
        if self.transport is None or self.lost:
            return
        if self.tls:
            self.transport.abort()
        else:
            self.transport.close()

    def closed(self) -> asyncio.Future[None]:
        if self.lost_waiter is None:
            self.lost_waiter = self.loop.create_future()
            if self.lost:
                self.lost_waiter.set_result(None)
        return self.lost_waiter


class _Body:
    """Reads one response body from a connection's buffer, without waiting: ``take()``
    gives the next bytes, ``b""`` at the end, or None when it needs more data."""

    __slots__ = ("conn", "left", "limit", "mode", "state", "trailers")

    def __init__(self, conn: _Connection, mode: int, length: int, limit: int) -> None:
        self.conn = conn
        self.mode = mode
        self.left = length  # bytes left of the body (length) or of the current chunk
        self.state = _SIZE if mode == _CHUNKED else (_DONE if mode == _NONE else _DATA)
        self.limit = limit  # for the trailer section
        self.trailers: Headers | None = None

    @property
    def done(self) -> bool:
        return self.state == _DONE

    def take(self) -> bytes | None:
        conn = self.conn
        buf = conn.buf
        mode = self.mode
        if mode == _LENGTH:
            left = self.left
            if left == 0:
                self.state = _DONE
                return b""
            if buf:
                if len(buf) <= left:
                    piece = bytes(buf)
                    buf.clear()
                else:
                    piece = bytes(buf[:left])
                    del buf[:left]
                self.left = left - len(piece)
                return piece
            if conn.eof:
                raise conn.lost_error(f"{left:,} bytes before the end of the body")
            return None
        if mode == _CHUNKED:
            return self._chunked(conn, buf)
        if mode == _CLOSE:
            if self.state == _DONE:
                return b""
            if buf:
                piece = bytes(buf)
                buf.clear()
                return piece
            if conn.eof:
                if conn.error is not None:
                    raise conn.lost_error("in the middle of the body")
                self.state = _DONE
                return b""
            return None
        return b""

    def _chunked(self, conn: _Connection, buf: bytearray) -> bytes | None:
        while True:
            state = self.state
            if state == _DATA:
                if buf:
                    left = self.left
                    if len(buf) <= left:
                        piece = bytes(buf)
                        buf.clear()
                    else:
                        piece = bytes(buf[:left])
                        del buf[:left]
                    self.left = left - len(piece)
                    if self.left == 0:
                        self.state = _DATA_END
                    return piece
            elif state == _SIZE:
                end = buf.find(b"\r\n")
                if end >= 0:
                    if end > MAX_CHUNK_LINE:
                        raise TooLarge(f"a chunk-size line is over {MAX_CHUNK_LINE:,} bytes")
                    line = bytes(buf[:end])
                    del buf[: end + 2]
                    size = line.split(b";", 1)[0].rstrip(b" \t")
                    if not size or size.translate(None, _HEX) or len(size) > 15:
                        raise ProtocolError(
                            f"the response has a malformed chunk size: {_show(line)}"
                        )
                    self.left = int(size, 16)
                    self.state = _DATA if self.left else _TRAILER
                    continue
                if len(buf) > MAX_CHUNK_LINE:
                    raise TooLarge(f"a chunk-size line is over {MAX_CHUNK_LINE:,} bytes")
            elif state == _DATA_END:
                if len(buf) >= 2:
                    if buf[:2] != b"\r\n":
                        raise ProtocolError("a chunk is longer than its size says")
                    del buf[:2]
                    self.state = _SIZE
                    continue
            elif state == _TRAILER:
                if buf[:2] == b"\r\n":
                    del buf[:2]
                    self.state = _DONE
                    return b""
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    if end > self.limit:
                        raise TooLarge(f"the chunked trailer section is over {self.limit:,} bytes")
                    section = bytes(buf[:end])
                    del buf[: end + 4]
                    self.trailers = _parse_fields(_check_head(section), 0)
                    self.state = _DONE
                    return b""
                if len(buf) > self.limit:
                    raise TooLarge(f"the chunked trailer section is over {self.limit:,} bytes")
            else:
                return b""
            if conn.eof:
                raise conn.lost_error("in the middle of a chunked body")
            return None


# -- URLs, endpoints and proxies ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP proxy: where it listens, and its credentials as a header line."""

    host: str
    port: int
    url: str  # without credentials, for messages
    auth: bytes = field(default=b"", repr=False)  # b"Proxy-Authorization: Basic …\r\n"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A URL resolved once for many requests by one :class:`HttpClient`: where to
    connect, the request target and the header lines every request to it carries."""

    scheme: str
    host: str  # as connected to: ASCII (IDNA), no brackets
    port: int
    target: bytes  # the request-target as sent (absolute form through an http proxy)
    authority: str  # host[:port] as in the Host header
    proxy: Proxy | None
    key: str  # the pool this endpoint's connections live in
    head: bytes = field(repr=False)  # b" <target> HTTP/1.1\r\nHost: …\r\n<client headers>"
    basic_auth: bytes = field(default=b"", repr=False)  # from user:password@ in the URL

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    def message(self, method: bytes, headers: bytes, body: bytes | None) -> bytes:
        """The request bytes: ``headers`` are complete header lines (see :func:`header_lines`)."""
        if body is None:
            return b"".join((method, self.head, headers, b"\r\n"))
        return b"".join(
            (method, self.head, headers, b"Content-Length: %d\r\n\r\n" % len(body), body)
        )


def header_lines(headers: Mapping[str, str]) -> bytes:
    """``headers`` as request header lines (``Name: value\\r\\n`` each), checked: names are
    tokens and values hold no line breaks or control characters (ValueError, naming only
    the field)."""
    lines = []
    for name, value in headers.items():
        raw = name.encode("latin-1", "replace")
        if not raw or raw.translate(None, _TCHAR):
            raise ValueError(f"{name!r} is not a valid header name")
        data = value.encode("latin-1", "replace") if isinstance(value, str) else bytes(value)
        if len(data.translate(None, _BAD_HEAD + b"\r\n")) != len(data):
            raise ValueError(
                f"the value of the {name} header contains a line break or control character"
            )
        lines.append(b"%s: %s\r\n" % (raw, data.strip(b" \t")))
    return b"".join(lines)


def environment_proxies() -> dict[str, str]:
    """``{"http"|"https"|"all": proxy URL, "no": NO_PROXY}`` from the environment, read as
    urllib reads it (lower-case names win over upper-case)."""
    found = urllib.request.getproxies_environment()
    return {k: v for k, v in found.items() if k in ("http", "https", "all", "no") and v}


def no_proxy(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` exempts ``host``: ``*``, the host itself or a parent domain
    (a leading dot is ignored), optionally with ``:port``, as urllib reads it."""
    host = host.lower().strip("[]")
    for entry in no_proxy.split(","):
        name = entry.strip().lower().lstrip(".")
        if name == "*":
            return True
        if name.rsplit(":", 1)[-1].isdigit() and not name.endswith("]") and name.count(":") == 1:
            name, _, only = name.partition(":")
            if port != int(only):
                continue
        name = name.strip("[]")
        if name and (host == name or host.endswith(f".{name}")):
            return True
    return False


def _split(url: str) -> tuple[urllib.parse.SplitResult, str, int]:
    """The parts of an http(s) URL, its ASCII host and its port; InvalidURL otherwise."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise InvalidURL(f"the URL is malformed ({exc})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidURL("the URL must start with http:// or https:// and name a host")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidURL("the URL's host name is not a valid internationalised name") from None
    if any(c in host for c in " \t\r\n\x00/\\?#@"):
        raise InvalidURL("the URL's host name contains characters not allowed there")
    return parts, host, port or (443 if parts.scheme == "https" else 80)


def _authority(host: str, port: int, default: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port == default else f"{shown}:{port}"


def _basic(user: str | None, password: str | None) -> str:
    login = f"{urllib.parse.unquote(user or '')}:{urllib.parse.unquote(password or '')}"
    return base64.b64encode(login.encode()).decode()


def _proxy_for(scheme: str, host: str, port: int, proxies: Mapping[str, str]) -> Proxy | None:
    if not proxies or no_proxy(host, port, proxies.get("no", "")):
        return None
    chosen = proxies.get(scheme) or proxies.get("all")
    if not chosen:
        return None
    parts, proxy_host, proxy_port = _split(chosen if "://" in chosen else f"http://{chosen}")
    if parts.scheme != "http":
        raise InvalidURL("the proxy URL must start with http:// (https proxies are not supported)")
    auth = b""
    if parts.username is not None:
        auth = f"Proxy-Authorization: Basic {_basic(parts.username, parts.password)}\r\n".encode()
    shown = f"http://{_authority(proxy_host, proxy_port, 80)}"
    return Proxy(proxy_host, proxy_port, shown, auth)


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """The default TLS context, built once per process: the CAs of ``SSL_CERT_FILE`` or
    ``SSL_CERT_DIR`` when set, else certifi's bundle (else the system store). Building one
    takes a noticeable fraction of a second."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi is a dependency
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


# -- responses ----------------------------------------------------------------------------


class Response:
    """A response read whole."""

    __slots__ = ("body", "headers", "reason", "status", "trailers")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Headers,
        body: bytes,
        trailers: Headers | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.trailers = trailers  # of a chunked body, when it had any

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason!r}, {len(self.body):,} bytes>"


class StreamResponse:
    """A response whose body is read as it arrives: ``async for piece in response``
    (bytes, never empty) or ``await response.read()``. Close it (``async with``, or
    ``aclose()``): a body read to its end returns the connection to the pool, one that
    was not read to its end closes the connection."""

    __slots__ = (
        "_body",
        "_conn",
        "_done",
        "_pool",
        "_read_timeout",
        "_reuse",
        "headers",
        "reason",
        "status",
    )

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Headers,
        conn: _Connection,
        pool: _Pool,
        body: _Body,
        reuse: bool,
        read_timeout: float | None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self._conn = conn
        self._pool = pool
        self._body = body
        self._reuse = reuse
        self._read_timeout = read_timeout
        self._done = False

    @property
    def trailers(self) -> Headers | None:
        return self._body.trailers

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        piece = await self._next()
        if not piece:
            raise StopAsyncIteration
        return piece

    async def _next(self) -> bytes:
        if self._done:
            return b""
        body = self._body
        try:
            while True:
                piece = body.take()
                if piece is not None:
                    break
                if self._read_timeout is None:
                    await self._conn.wait()
                else:
                    try:
                        async with asyncio.timeout(self._read_timeout):
                            await self._conn.wait()
                    except TimeoutError:
                        raise HttpTimeout(
                            f"no data for {self._read_timeout:g}s while reading the body"
                        ) from None
        except BaseException:
            self._finish(False)
            raise
        if not piece:
            self._finish(self._reuse)
        return piece

    async def read(self, limit: int | None = None) -> bytes:
        """The rest of the body: at most ``limit`` bytes (default: the client's
        ``max_body_bytes``), else :class:`TooLarge`."""
        if limit is None:
            limit = self._pool.settings.max_body
        parts: list[bytes] = []
        size = 0
        while piece := await self._next():
            size += len(piece)
            if size > limit:
                self._finish(False)
                raise TooLarge(f"the response body is over {limit:,} bytes")
            parts.append(piece)
        return b"".join(parts)

    def _finish(self, reuse: bool) -> None:
        if not self._done:
            self._done = True
            self._pool.release(self._conn, reuse and not self._conn.buf)

    def close(self) -> None:
        """Give the connection back (body read to its end) or close it (otherwise)."""
        self._finish(self._body.done and self._reuse)

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


# -- pools --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Settings:
    max_connections: int
    keepalive_expiry: float
    connect_timeout: float | None
    max_head: int
    max_body: int
    ssl_context: ssl.SSLContext | None


class _Pool:
    """The connections of one loop to one origin."""

    __slots__ = ("closed", "conns", "count", "endpoint", "idle", "loop", "settings", "waiters")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, settings: _Settings, endpoint: Endpoint
    ) -> None:
        self.loop = loop
        self.settings = settings
        self.endpoint = endpoint
        self.idle: list[_Connection] = []  # LIFO: the most recently used is at the end
        self.count = 0  # open or opening connections, idle or in use
        self.conns: set[_Connection] = set()
        self.waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self.closed = False

    # -- taking and giving back

    async def acquire(self) -> _Connection:
        idle = self.idle
        if idle:
            expiry = self.loop.time() - self.settings.keepalive_expiry
            while idle:
                conn = idle.pop()
                if conn.eof or conn.buf or conn.idle_since < expiry:
                    self._drop(conn)
                    continue
                conn.in_pool = False
                return conn
        if self.closed:
            raise ConnectionLost("the HTTP client was closed")
        if self.count < self.settings.max_connections and not self.waiters:
            self.count += 1
        else:
            waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
            self.waiters.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    # handed something, but cancelled before it could be used: pass it on
                    given = waiter.result()
                    if given is None:
                        self._free()
                    else:
                        self.release(given, True)
                elif waiter in self.waiters:
                    self.waiters.remove(waiter)
                raise
            if handed is not None:
                if handed.eof or handed.buf:  # went bad on the way
                    return await self.replace(handed)
                return handed
            # else: a slot was handed over; the count already includes it
        try:
            return await self._connect()
        except BaseException:
            self._free()
            raise

    def release(self, conn: _Connection, reuse: bool) -> None:
        """Back to the pool (``reuse``: the exchange ended cleanly), else closed."""
        if conn.closing:
            return
        if not reuse or conn.eof or self.closed:
            self.discard(conn)
            return
        conn.reused = True
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        now = self.loop.time()
        conn.in_pool = True
        conn.idle_since = now
        idle = self.idle
        idle.append(conn)
        if idle[0].idle_since < now - self.settings.keepalive_expiry:
            for old in [c for c in idle if c.idle_since < now - self.settings.keepalive_expiry]:
                idle.remove(old)
                self._drop(old)

    def discard(self, conn: _Connection) -> None:
        """Close a connection in use and give its slot to the next in line."""
        if conn.closing:
            return
        conn.close()
        self.conns.discard(conn)
        self._free()

    async def replace(self, conn: _Connection) -> _Connection:
        """A fresh connection in place of ``conn`` (closed), keeping its slot."""
        conn.close()
        self.conns.discard(conn)
        try:
            return await self._connect()
        except BaseException:
            self._free()
            raise

    def _drop(self, conn: _Connection) -> None:
        conn.in_pool = False
        conn.close()
        self.conns.discard(conn)
        self._free()

    def _lost_idle(self, conn: _Connection) -> None:
        """The server closed an idle connection."""
        try:
            self.idle.remove(conn)
        except ValueError:
            return
        conn.in_pool = False
        conn.closing = True
        self.conns.discard(conn)
        self._free()

    def _free(self) -> None:
        """A connection slot is free: hand it to the first waiter, else count it down."""
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.count -= 1

    # -- opening

    async def _connect(self) -> _Connection:
        if self.closed:
            raise ConnectionLost("the HTTP client was closed")
        timeout = self.settings.connect_timeout
        if timeout is None:
            return await self._open()
        try:
            async with asyncio.timeout(timeout):
                return await self._open()
        except HttpTimeout:
            raise
        except TimeoutError:
            raise HttpTimeout(f"could not connect to {self._where()} within {timeout:g}s") from None

    def _where(self) -> str:
        ep = self.endpoint
        where = f"{ep.scheme}://{ep.authority}"
        return f"{where} through the proxy {ep.proxy.url}" if ep.proxy else where

    async def _open(self) -> _Connection:
        ep = self.endpoint
        settings = self.settings
        conn = _Connection(self.loop, self, settings.max_head + settings.max_body + 65536)
        context = (settings.ssl_context or default_ssl_context()) if ep.tls else None
        try:
            if ep.proxy is None:
                await self.loop.create_connection(
                    lambda: conn,
                    ep.host,
                    ep.port,
                    ssl=context,
                    server_hostname=(ep.host if context is not None else None),
                )
                conn.tls = context is not None
            else:
                await self.loop.create_connection(lambda: conn, ep.proxy.host, ep.proxy.port)
                if context is not None:
                    await self._tunnel(conn, context)
        except HttpError:
            conn.close()
            raise
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            conn.close()
            detail = str(exc) or "no detail"
            raise ConnectFailed(
                f"cannot connect to {self._where()}: {type(exc).__name__}: {detail}", exc
            ) from exc
        except BaseException:
            conn.close()
            raise
        self.conns.add(conn)
        return conn

    async def _tunnel(self, conn: _Connection, context: ssl.SSLContext) -> None:
        ep = self.endpoint
        assert ep.proxy is not None and conn.transport is not None
        authority = f"[{ep.host}]:{ep.port}" if ":" in ep.host else f"{ep.host}:{ep.port}"
        await conn.send(
            b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n"
            % (authority.encode(), authority.encode(), ep.proxy.auth)
        )
        while True:
            status, reason, *_ = _parse_head(await conn.read_head(self.settings.max_head))
            if status >= 200:
                break
        if not 200 <= status < 300:
            raise ProxyRefused(
                f"the proxy {ep.proxy.url} answered {status} {' '.join(reason.split())[:80]} "
                f"to CONNECT {authority}"
            )
        if conn.buf:
            raise ProtocolError("the proxy sent bytes after accepting the tunnel")
        transport = await self.loop.start_tls(
            conn.transport, conn, context, server_hostname=ep.host
        )
        if transport is None:  # pragma: no cover - only when the loop closed meanwhile
            raise ConnectionLost("the connection closed while TLS started")
        conn.transport = transport
        conn.tls = True

    # -- one exchange

    async def _send(
        self, conn: _Connection, data: bytes, written: bool = False
    ) -> tuple[_Connection, bytes]:
        """Send ``data`` on ``conn`` (``written``: it was just written there, and nothing of
        the reply taken from the buffer yet); the connection that answered and the response
        head. A pooled connection found closed before any byte of the response came is
        replaced by a fresh one and ``data`` sent again, once. On failure the connection in
        use is discarded."""
        retried = False
        limit = self.settings.max_head
        try:
            while True:
                if not written:
                    conn.got_data = False
                    assert conn.transport is not None
                    conn.transport.write(data)
                written = False
                try:
                    if conn.write_paused:
                        await conn.drain()
                    return conn, await conn.read_head(limit)
                except ConnectionLost:
                    if retried or not conn.reused or conn.got_data:
                        raise
                    retried = True
                    conn = await self.replace(conn)
        except BaseException:
            self.discard(conn)
            raise

    async def exchange(self, data: bytes, head_request: bool) -> Response:
        """Send ``data``; the whole response.

        The usual exchange runs here without another coroutine: the last idle connection
        is fit for use (else :meth:`acquire`), the request is written at once (no write
        back-pressure, nothing buffered) and one wait brings the whole head; anything else
        continues in :meth:`_send`, which sees the state :meth:`read_head` would have."""
        idle = self.idle
        settings = self.settings
        if idle:
            conn = idle[-1]
            expiry = self.loop.time() - settings.keepalive_expiry
            if conn.eof or conn.buf or conn.idle_since < expiry:
                conn = await self.acquire()
            else:
                idle.pop()
                conn.in_pool = False
        else:
            conn = await self.acquire()
        max_head = settings.max_head
        try:
            transport = conn.transport
            buf = conn.buf
            if transport is None or conn.write_paused or conn.eof or buf:
                conn, head = await self._send(conn, data)
            else:
                conn.got_data = False
                transport.write(data)
                if conn.write_paused or conn.eof or buf:
                    conn, head = await self._send(conn, data, True)
                else:
                    await conn.wait()
                    end = buf.find(b"\r\n\r\n")
                    if 0 <= end <= max_head:
                        head = bytes(buf[:end])
                        del buf[: end + 4]
                    else:  # not all here yet, too long, or the connection ended
                        conn, head = await self._send(conn, data, True)
            while True:
                status, reason, headers, mode, length, reuse = _parse_head(head, head_request)
                if status >= 200:
                    break
                if status == 101:
                    raise ProtocolError("the server switched protocols without being asked to")
                head = await conn.read_head(max_head)  # 1xx: interim, skip it
            buf = conn.buf
            trailers = None
            max_body = settings.max_body
            if mode == _LENGTH and length > max_body:
                raise TooLarge(f"the response body is over {max_body:,} bytes ({length:,})")
            if mode == _LENGTH and len(buf) == length:  # the usual case: all here, nothing else
                body = bytes(buf)
                buf.clear()
            elif mode == _NONE:
                body = b""
            else:
                body, trailers = await _read_all(_Body(conn, mode, length, max_head), max_body)
        except BaseException:
            self.discard(conn)
            raise
        if reuse and not buf:
            self.release(conn, True)
        else:
            self.discard(conn)
        return Response(status, reason, headers, body, trailers)

    async def open(self, data: bytes, head_request: bool, timeout: float | None) -> StreamResponse:
        """Send ``data``; the response once its head arrived. Getting a connection, and
        each wait for the head, may take ``timeout`` seconds."""
        conn = await _within(self.acquire(), timeout)
        max_head = self.settings.max_head
        conn.cap = max_head + STREAM_BUFFER_BYTES
        try:
            conn, head = await _within(self._send(conn, data), timeout)
            conn.cap = max_head + STREAM_BUFFER_BYTES
            while True:
                status, reason, headers, mode, length, reuse = _parse_head(head, head_request)
                if status >= 200:
                    break
                if status == 101:
                    raise ProtocolError("the server switched protocols without being asked to")
                head = await _within(conn.read_head(max_head), timeout)
        except BaseException:
            self.discard(conn)
            raise
        body = _Body(conn, mode, length, max_head)
        return StreamResponse(status, reason, headers, conn, self, body, reuse, timeout)

    # -- closing

    async def aclose(self) -> None:
        self.closed = True
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionLost("the HTTP client was closed"))
        conns = list(self.conns)
        self.conns.clear()
        self.idle.clear()
        for conn in conns:
            conn.in_pool = False
            conn.shut()
        pending = [conn.closed() for conn in conns if not conn.lost]
        if pending:
            await asyncio.wait(pending, timeout=2.0)
            for conn in conns:
                if not conn.lost and conn.transport is not None:
                    conn.transport.abort()


class _Deadline:
    """``asyncio.timeout`` for a task whose loop is known: cancels ``task`` ``delay``
    seconds from now. (``asyncio.timeout`` looks up the running loop three times, each
    with a system call, which on a request's path costs more than the rest of it.)"""

    __slots__ = ("cancelling", "fired", "handle", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], delay: float):
        self.task = task
        self.cancelling = task.cancelling()
        self.fired = False
        self.handle = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self.fired = True
        self.task.cancel()

    def end(self) -> bool:
        """Stop the timer; True when it fired and no other cancellation is pending (a
        ``CancelledError`` is then this timeout's), as ``asyncio.timeout`` decides."""
        self.handle.cancel()
        return self.fired and self.task.uncancel() <= self.cancelling


async def _within(waiting: Awaitable[T], timeout: float | None) -> T:
    if timeout is None:
        return await waiting
    try:
        async with asyncio.timeout(timeout):
            return await waiting
    except HttpTimeout:
        raise
    except TimeoutError:
        raise HttpTimeout(f"no response within {timeout:g}s") from None


async def _read_all(reader: _Body, limit: int) -> tuple[bytes, Headers | None]:
    parts: list[bytes] = []
    size = 0
    conn = reader.conn
    while True:
        piece = reader.take()
        if piece is None:
            await conn.wait()
            continue
        if not piece:
            return b"".join(parts), reader.trailers
        size += len(piece)
        if size > limit:
            raise TooLarge(f"the response body is over {limit:,} bytes")
        parts.append(piece)


class _LoopPools:
    """The pools of one event loop."""

    __slots__ = ("closed", "loop", "pools", "settings")

    def __init__(self, loop: asyncio.AbstractEventLoop, settings: _Settings) -> None:
        self.loop = loop
        self.settings = settings
        self.pools: dict[str, _Pool] = {}
        self.closed = False

    def add(self, endpoint: Endpoint) -> _Pool:
        pool = self.pools[endpoint.key] = _Pool(self.loop, self.settings, endpoint)
        return pool

    async def aclose(self) -> None:
        self.closed = True
        pools, self.pools = list(self.pools.values()), {}
        for pool in pools:
            await pool.aclose()


async def _close_with_loop(pools: _LoopPools) -> AsyncGenerator[None, None]:
    """Holds ``pools`` open; closing this generator closes them. The loop that first ran
    it closes it when the loop shuts down (``asyncio.run``, ``asyncio.Runner``)."""
    try:
        yield
    finally:
        await pools.aclose()


async def _finish(keeper: AsyncGenerator[None, None]) -> None:
    await keeper.aclose()


# -- the client ---------------------------------------------------------------------------


class HttpClient:
    """A pooled HTTP/1.1 client usable from any number of event loops (one pool set per
    loop). ``headers`` are sent with every request (precomputed once per endpoint).

    ``proxies``: None reads ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``/``NO_PROXY`` now;
    ``{}`` uses none; else ``{"http"|"https"|"all": url, "no": "host,…"}``.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_expiry: float = 30.0,
        connect_timeout: float | None = None,
        max_head_bytes: int = MAX_HEAD_BYTES,
        max_body_bytes: int = MAX_BODY_BYTES,
        ssl_context: ssl.SSLContext | None = None,
        headers: Mapping[str, str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be ≥ 1")
        self._settings = _Settings(
            max_connections,
            keepalive_expiry,
            connect_timeout,
            max_head_bytes,
            max_body_bytes,
            ssl_context,
        )
        self._headers = header_lines(headers or {})
        self._proxies = dict(environment_proxies() if proxies is None else proxies)
        self._loops: dict[asyncio.AbstractEventLoop, _LoopPools] = {}
        self._keepers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"HttpClient(max_connections={self._settings.max_connections})"

    @property
    def closed(self) -> bool:
        return self._closed

    def endpoint(self, url: str) -> Endpoint:
        """``url`` resolved for requests through this client (proxy chosen now)."""
        parts, host, port = _split(url)
        scheme = parts.scheme
        default = 443 if scheme == "https" else 80
        authority = _authority(host, port, default)
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        path = urllib.parse.quote(path, safe="/%:@!$&'()*+,;=-._~?")
        proxy = _proxy_for(scheme, host, port, self._proxies)
        basic = b""
        if parts.username is not None:
            basic = f"Authorization: Basic {_basic(parts.username, parts.password)}\r\n".encode()
        if proxy is not None and scheme == "http":
            target = f"http://{authority}{path}"
            key = f"proxy {proxy.host}:{proxy.port}"
            extra = proxy.auth
        else:
            target = path
            key = f"{scheme}://{host}:{port}" + (f" via {proxy.host}:{proxy.port}" if proxy else "")
            extra = b""
        head = b"".join(
            (
                b" ",
                target.encode("ascii"),
                b" HTTP/1.1\r\nHost: ",
                authority.encode("ascii"),
                b"\r\n",
                self._headers,
                extra,
            )
        )
        return Endpoint(
            scheme, host, port, target.encode("ascii"), authority, proxy, key, head, basic
        )

    # -- requests

    async def request(
        self,
        endpoint: Endpoint,
        method: bytes = b"POST",
        body: bytes | None = None,
        headers: bytes = b"",
        *,
        timeout: float | None = None,
    ) -> Response:
        """One request, its response read whole; connect, send and read within ``timeout``
        seconds. ``headers``: extra header lines (:func:`header_lines`); ``body`` None sends
        no Content-Length (GET), bytes (even empty) do."""
        # as _pool(), inline: one coroutine fewer
        loop = _get_running_loop()
        pools = self._loops.get(loop)
        if pools is None or pools.closed:
            pools = await self._start(loop)
        pool = pools.pools.get(endpoint.key) or pools.add(endpoint)
        data = endpoint.message(method, headers, body)
        head_request = method == b"HEAD"
        task = _current_task(loop) if timeout is not None else None
        if task is None or timeout is None:
            return await _within(pool.exchange(data, head_request), timeout)
        deadline = _Deadline(loop, task, timeout)
        try:
            response = await pool.exchange(data, head_request)
        except asyncio.CancelledError:
            if deadline.end():
                raise HttpTimeout(f"no complete response within {timeout:g}s") from None
            raise
        except BaseException:
            deadline.end()
            raise
        deadline.end()
        return response

    async def open(
        self,
        endpoint: Endpoint,
        method: bytes = b"POST",
        body: bytes | None = None,
        headers: bytes = b"",
        *,
        timeout: float | None = None,
    ) -> StreamResponse:
        """One request; the response as soon as its head arrived, its body to be read as it
        comes. Getting a connection, and each wait for data, may take ``timeout`` seconds."""
        pool = await self._pool(endpoint)
        data = endpoint.message(method, headers, body)
        return await pool.open(data, method == b"HEAD", timeout)

    async def _pool(self, endpoint: Endpoint) -> _Pool:
        """The running loop's pool for ``endpoint``'s origin, made on first use."""
        loop = asyncio.get_running_loop()
        pools = self._loops.get(loop)
        if pools is None or pools.closed:
            pools = await self._start(loop)
        return pools.pools.get(endpoint.key) or pools.add(endpoint)

    async def _start(self, loop: asyncio.AbstractEventLoop) -> _LoopPools:
        """This loop's pools, made now; they close with the loop if not before."""
        if self._closed:
            raise RuntimeError("this HTTP client is closed; create a new one")
        for old in [other for other in list(self._loops) if other.is_closed()]:
            self._loops.pop(old, None)
            self._keepers.pop(old, None)
        pools = _LoopPools(loop, self._settings)
        keeper = _close_with_loop(pools)
        await anext(keeper)  # now registered with the loop, which closes it on shutdown
        self._loops[loop] = pools
        self._keepers[loop] = keeper
        return pools

    async def aclose(self) -> None:
        """Close every pooled connection (in every event loop the client was used in)."""
        self._closed = True
        keepers, self._keepers, self._loops = self._keepers, {}, {}
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for loop, keeper in keepers.items():
            if loop is here:
                await keeper.aclose()
            elif loop.is_running():
                # another thread's loop: close its pools there, without waiting for it
                with contextlib.suppress(RuntimeError):  # that loop closed meanwhile
                    asyncio.run_coroutine_threadsafe(_finish(keeper), loop)
            # a loop that is not running closes its pools when it shuts down

    async def __aenter__(self) -> Self:
        if self._closed:
            raise RuntimeError("this HTTP client is closed; create a new one")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEAD_BYTES",
    "ConnectFailed",
    "ConnectionLost",
    "Endpoint",
    "Headers",
    "HttpClient",
    "HttpError",
    "HttpTimeout",
    "InvalidURL",
    "ProtocolError",
    "Proxy",
    "ProxyRefused",
    "Response",
    "StreamResponse",
    "TooLarge",
    "default_ssl_context",
    "environment_proxies",
    "header_lines",
    "no_proxy",
]
