"""The OpenAI-compatible model provider over HTTP; built by the runtime, evals and tests.

:class:`OpenAIClient` implements ``llmops.runtime.provider.ModelProvider`` for any server
that speaks the OpenAI chat-completions API (OpenAI, vLLM, Ollama, llama.cpp, the llmops
stub), on llmops' own HTTP/1.1 transport (:mod:`llmops.adapters.http1`): an eval case or
a gateway request spends a fraction of the CPU here that aiohttp's client session costs
(``benchmarks/bench_client.py`` compares them side by side).

Pools and event loops: the transport keeps one pool of keep-alive connections per event
loop and per origin (at most ``max_connections`` each), opened lazily on that loop's
first call; ``aclose()`` closes them all. The pools of a loop that ends first
(``asyncio.run`` returns, an ``asyncio.Runner`` closes) are closed as the loop shuts down
its async generators, so a client reused across ``asyncio.run`` calls works and leaks
nothing. After ``aclose()`` the client refuses new calls. A pooled connection the server
closed while idle is replaced and the request re-sent once, before any reply byte.

Retries: 408, 409, 429, 500, 502, 503, 504 (and 529), timeouts, connection errors and
malformed replies are retried up to ``max_retries`` times with exponential backoff and
full jitter, or after the server's ``Retry-After`` (capped). Any other 4xx is
``Permanent`` at once. When retries run out the error is ``Retryable`` and says what was
tried (``POST <url>``, without credentials) and what went wrong. The API key travels only
in the ``Authorization`` header: it is never logged, never stored on the client and
scrubbed from every message and from the exceptions chained to ours.

Proxies: like httpx before it, the client honours ``HTTP_PROXY``/``HTTPS_PROXY``/
``ALL_PROXY`` and ``NO_PROXY`` as they are when it is built (HTTP proxies: plain-http
calls are sent to the proxy, https ones tunnel through it with ``CONNECT``; credentials
in the proxy URL are sent as proxy basic auth). ``~/.netrc`` is not read.
"""

from __future__ import annotations

import asyncio
import http
import logging
import random
import re
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from time import perf_counter as _perf_counter
from typing import Any, Self, TypeVar

from llmops import __version__
from llmops.adapters.http1 import (
    ConnectFailed,
    Endpoint,
    Headers,
    HttpClient,
    HttpError,
    HttpTimeout,
    InvalidURL,
    ProxyRefused,
    StreamResponse,
    default_ssl_context,
)
from llmops.adapters.openai_wire import (
    Chunk,
    ReplyFields,
    WireError,
    chat_body,
    error_text,
    parse_chunk,
    parse_embeddings,
    parse_reply,
    redact,
    reply_fields,
)
from llmops.adapters.retry import RETRYABLE_STATUS, backoff_delay, parse_retry_after
from llmops.adapters.sse import LineSplitter, LineTooLong, SSEDecoder
from llmops.domain import jsoncodec
from llmops.domain.chat import ChatRequest, ChatResponse, Usage
from llmops.domain.errors import Permanent, Retryable

__all__ = ["ChatStream", "OpenAIClient", "Pricer", "default_ssl_context"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ``(model, prompt_tokens, completion_tokens) -> USD``; ``llmops.runtime.pricing.PriceTable``.
Pricer = Callable[[str, int, int], float]

_HINTS = {
    401: "check the API key (spec.model.apiKey)",
    403: "the API key is not allowed to use this model or endpoint",
    404: "check spec.model.baseUrl and the model name",
}

#: Endpoints remembered per client (resolved URL, proxy); more distinct ones clear the memo.
_MAX_TARGETS = 256

#: The JSON httpx sent: compact, UTF-8, no NaN; one encoder for every call.

_USERINFO = re.compile(r"(?<=//)[^/?#]*@")  # user:password@ (up to the last @)

#: How long a finished stream may take to send the end of its body (after ``[DONE]``)
#: for its connection to be reused; past that the connection is closed instead.
_STREAM_END_GRACE = 0.25


class _Transient(Exception):
    """One failed attempt that may succeed when retried (internal)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after

    def scrub(self, secret: str | None) -> None:
        self.reason = redact(self.reason, secret)
        self.args = (self.reason,)


@dataclass(frozen=True, slots=True)
class _Target:
    """One endpoint, resolved once: where the transport sends it (proxy included), and how
    messages name the call (``POST <url>`` without credentials)."""

    endpoint: Endpoint
    what: str


class ChatStream:
    """The deltas of a streamed reply; after the last one, what the server said about it.

    Iterate it with ``async for``. Once exhausted, ``usage`` holds the token counts (when
    the server sent them), ``finish_reason`` and ``model`` the final chunk's values, and
    ``retries`` how often the stream was re-opened before its first delta.
    """

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.model: str | None = None
        self.retries = 0
        self._deltas: AsyncIterator[str] | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str:
        assert self._deltas is not None
        return await self._deltas.__anext__()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop early and release the connection (also done by ``async with``)."""
        closer = getattr(self._deltas, "aclose", None)
        if closer is not None:
            await closer()


class OpenAIClient:
    """An async OpenAI-compatible chat/embeddings client with one connection pool per
    event loop.

    ``pricer`` turns token counts into USD (pass ``llmops.runtime.pricing.PriceTable()``);
    without one every cost is 0. ``seed`` makes the backoff jitter reproducible.
    ``ssl_context`` replaces the default TLS setup (e.g. for a private CA).
    ``max_connections`` bounds the connections to each origin, per event loop.
    """

    def __init__(
        self,
        *,
        pricer: Pricer | None = None,
        max_connections: int = 100,
        keepalive_expiry: float = 30.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        retry_after_cap: float = 30.0,
        embed_timeout_seconds: float = 30.0,
        embed_max_retries: int = 2,
        seed: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._pricer = pricer
        self._max_connections = max_connections
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._retry_after_cap = retry_after_cap
        self._embed_timeout = embed_timeout_seconds
        self._embed_max_retries = embed_max_retries
        self._rng = random.Random(seed)
        self._http = HttpClient(
            max_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
            ssl_context=ssl_context,
            headers={
                "User-Agent": f"llmops/{__version__}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
        )  # reads the proxy settings of the environment now
        self._targets: dict[tuple[str, str], _Target] = {}
        self._chat_targets: dict[str, _Target] = {}  # complete()'s, by base URL
        self._closed = False

    def __repr__(self) -> str:
        return f"OpenAIClient(max_connections={self._max_connections})"

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections (in every event loop the client was used in)."""
        self._closed = True
        await self._http.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this OpenAIClient is closed; create a new one")

    # -- chat -------------------------------------------------------------------------

    async def complete(self, request: ChatRequest, api_key: str | None = None) -> ChatResponse:
        """One reply; ``latency_ms`` covers every attempt and the waits between them.

        The first attempt runs inline (no retry machinery) and the reply is read as a
        tuple (:func:`reply_fields`): most calls need nothing else."""
        if self._closed:
            self._check_open()
        target = self._chat_targets.get(request.base_url)
        if target is None:
            target = self._chat_target(request.base_url, api_key)
        headers = _auth_lines(api_key, target)
        payload = _json_payload(chat_body(request, stream=False), target, api_key)
        timeout = request.timeout_seconds
        started = _perf_counter()
        retries = 0
        first: _Transient | None = None
        try:  # the first attempt, inline: most calls need no other
            fields = _parsed(await self._post(target, payload, headers, timeout, api_key), target)
        except _Transient as failure:
            first = failure
        if first is not None:

            async def attempt() -> ReplyFields:
                body = await self._post(target, payload, headers, timeout, api_key)
                return _parsed(body, target)

            fields, retries = await self._retrying(
                target.what, request.max_retries, api_key, attempt, first
            )
        content, finish_reason, model, prompt_tokens, completion_tokens = fields
        pricer = self._pricer
        cost = pricer(request.model, prompt_tokens, completion_tokens) if pricer else 0.0
        return ChatResponse(
            content=content,
            usage=Usage(
                prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=cost
            ),
            model=model or request.model,
            latency_ms=(_perf_counter() - started) * 1000.0,
            retries=retries,
            finish_reason=finish_reason,
        )

    def stream(self, request: ChatRequest, api_key: str | None = None) -> ChatStream:
        """The reply as text deltas, in order (``stream: true``, server-sent events).

        Failures before the first delta are retried like ``complete``; after a delta has
        been yielded nothing is retried: a stream cut short (closed before ``[DONE]``)
        raises ``Retryable`` at once. ``timeout_seconds`` bounds each wait for data.
        """
        handle = ChatStream()
        handle._deltas = self._stream_deltas(request, api_key, handle)
        return handle

    async def _stream_deltas(
        self, request: ChatRequest, api_key: str | None, handle: ChatStream
    ) -> AsyncGenerator[str, None]:
        self._check_open()
        target = self._target(request.base_url, "chat/completions", api_key)
        headers = _auth_lines(api_key, target)
        payload = _json_payload(chat_body(request, stream=True), target, api_key)
        yielded = False
        while True:
            try:
                once = self._stream_once(target, payload, headers, request, api_key, handle)
                async with aclosing(once) as deltas:
                    async for delta in deltas:
                        yielded = True
                        yield delta
                return
            except _Transient as failure:
                failure.scrub(api_key)
                if yielded or handle.retries >= request.max_retries:
                    if yielded:
                        reason = f"{failure.reason}; the partial reply cannot be resumed"
                    else:
                        reason = f"{failure.reason}; gave up after {_times(handle.retries)}"
                    delay = self._delay(failure, handle.retries)
                    raise Retryable(reason, delay=delay) from _safe_cause(failure, api_key)
                delay = self._delay(failure, handle.retries)
                what = redact(f"stream {target.what}", api_key)
                self._log_retry(what, failure, handle.retries, request.max_retries, delay)
                await asyncio.sleep(delay)
                handle.retries += 1

    async def _stream_once(
        self,
        target: _Target,
        payload: bytes,
        headers: bytes,
        request: ChatRequest,
        api_key: str | None,
        handle: ChatStream,
    ) -> AsyncGenerator[str, None]:
        timeout = request.timeout_seconds
        try:
            response = await self._http.open(
                target.endpoint, b"POST", payload, headers, timeout=timeout
            )
        except HttpTimeout as exc:
            raise _Transient(f"no reply to {target.what} within {timeout:g}s (timeout)") from exc
        except HttpError as exc:
            raise _request_failure(exc, target.what, api_key) from exc
        chunks = 0
        try:
            if response.status >= 300:
                body = await response.read()
                _check_status(
                    response.status, response.reason, response.headers, body, target.what, api_key
                )
            if "json" in response.headers.get("Content-Type", ""):
                # a server that ignores ``stream: true`` answers with one whole completion
                reply = parse_reply(await response.read())
                handle.model, handle.finish_reason = reply.model, reply.finish_reason
                handle.usage = self._usage(
                    request.model, reply.prompt_tokens, reply.completion_tokens
                )
                if reply.content:
                    yield reply.content
                return
            lines, decoder = LineSplitter(), SSEDecoder()
            done = False
            async for data in response:
                for line in lines.feed(data):
                    event = decoder.feed(line)
                    if event is None:
                        continue
                    if event.strip() == "[DONE]":
                        done = True
                        break
                    chunks += 1
                    chunk = parse_chunk(event)
                    self._note_chunk(handle, request.model, chunk)
                    if chunk.delta:
                        yield chunk.delta
                if done:
                    break
            if not done:
                last = lines.flush()
                if last is not None:
                    decoder.feed(last)
                pending = decoder.flush()
                done = pending is not None and pending.strip() == "[DONE]"
            if not done:
                raise _Transient(
                    f"the stream from {target.what} ended before [DONE] after {chunks} chunks "
                    "(connection closed early; the reply is truncated)"
                )
            await _finish_quietly(response)
        except WireError as exc:
            raise _Transient(f"{target.what}: {exc}") from exc
        except LineTooLong as exc:
            raise _Transient(f"the stream from {target.what}: {exc}") from exc
        except HttpTimeout as exc:
            raise _Transient(
                f"the stream from {target.what} stalled: no data within {timeout:g}s "
                f"after {chunks} chunks"
            ) from exc
        except HttpError as exc:
            raise _Transient(
                f"the stream from {target.what} was cut off after {chunks} chunks "
                f"({type(exc).__name__}; the reply is truncated)"
            ) from exc
        finally:
            # read to its end: back to the pool; stopped early or failed: closed
            response.close()

    def _note_chunk(self, handle: ChatStream, model: str, chunk: Chunk) -> None:
        if chunk.model:
            handle.model = chunk.model
        if chunk.finish_reason:
            handle.finish_reason = chunk.finish_reason
        if chunk.prompt_tokens is not None or chunk.completion_tokens is not None:
            handle.usage = self._usage(
                model, chunk.prompt_tokens or 0, chunk.completion_tokens or 0
            )

    # -- embeddings -------------------------------------------------------------------

    async def embed(
        self, base_url: str, model: str, texts: list[str], api_key: str | None = None
    ) -> list[list[float]]:
        """Embedding vectors for ``texts``, in order (``POST {base_url}/embeddings``)."""
        if not texts:
            return []
        self._check_open()
        target = self._target(base_url, "embeddings", api_key)
        headers = _auth_lines(api_key, target)
        payload = _json_payload({"model": model, "input": list(texts)}, target, api_key)
        timeout = self._embed_timeout

        async def attempt() -> list[list[float]]:
            body = await self._post(target, payload, headers, timeout, api_key)
            try:
                return parse_embeddings(body, len(texts))
            except WireError as exc:
                raise _Transient(f"{target.what}: {exc}") from exc

        vectors, _ = await self._retrying(target.what, self._embed_max_retries, api_key, attempt)
        return vectors

    # -- HTTP -------------------------------------------------------------------------

    async def _post(
        self,
        target: _Target,
        payload: bytes,
        headers: bytes,
        timeout: float,
        api_key: str | None,
    ) -> bytes:
        """One attempt: the 2xx reply's body, or ``_Transient``/``Permanent``."""
        try:
            response = await self._http.request(
                target.endpoint, b"POST", payload, headers, timeout=timeout
            )
        except HttpError as exc:
            raise _attempt_failure(exc, target.what, timeout, api_key) from exc
        status = response.status
        if status < 200 or status >= 300:
            _check_status(
                status, response.reason, response.headers, response.body, target.what, api_key
            )
        return response.body

    def _chat_target(self, base_url: str, api_key: str | None) -> _Target:
        """:meth:`_target` of ``chat/completions``, remembered by ``base_url`` alone."""
        found = self._target(base_url, "chat/completions", api_key)
        if len(self._chat_targets) >= _MAX_TARGETS:
            self._chat_targets.clear()
        self._chat_targets[base_url] = found
        return found

    def _target(self, base_url: str, path: str, api_key: str | None) -> _Target:
        found = self._targets.get((base_url, path))
        if found is not None:
            return found
        raw = _endpoint(base_url, path)
        what = f"POST {_USERINFO.sub('', raw)}"
        try:
            endpoint = self._http.endpoint(raw)
        except InvalidURL as exc:
            if "must start with" in str(exc):
                reason = (
                    "the URL must start with http:// or https:// and name a host "
                    "(check spec.model.baseUrl)"
                )
            else:
                reason = f"{exc} (check spec.model.baseUrl and the proxy settings)"
            raise Permanent(redact(f"cannot send {what}: {reason}", api_key)) from None
        found = _Target(endpoint, what)
        if len(self._targets) >= _MAX_TARGETS:
            self._targets.clear()
        self._targets[(base_url, path)] = found
        return found

    # -- shared -----------------------------------------------------------------------

    def _usage(self, model: str, prompt_tokens: int, completion_tokens: int) -> Usage:
        cost = self._pricer(model, prompt_tokens, completion_tokens) if self._pricer else 0.0
        return Usage(
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=cost
        )

    def _delay(self, failure: _Transient, retries: int) -> float:
        if failure.retry_after is not None:
            return min(failure.retry_after, self._retry_after_cap)
        return backoff_delay(retries, self._backoff_base, self._backoff_cap, self._rng)

    def _log_retry(
        self, what: str, failure: _Transient, retries: int, max_retries: int, delay: float
    ) -> None:
        # ``what`` and ``failure.reason`` are already scrubbed of the key.
        log.warning(
            "%s failed: %s; retry %d/%d in %.2fs",
            what,
            failure.reason,
            retries + 1,
            max_retries,
            delay,
        )

    async def _retrying(
        self,
        what: str,
        max_retries: int,
        api_key: str | None,
        attempt: Callable[[], Awaitable[T]],
        failed: _Transient | None = None,
    ) -> tuple[T, int]:
        """``attempt()`` until it succeeds or ``max_retries`` retries ran out; ``failed``:
        the first attempt was already made, and failed so."""
        retries = 0
        while True:
            if failed is None:
                try:
                    return await attempt(), retries
                except _Transient as exc:
                    failed = exc
            failure, failed = failed, None
            failure.scrub(api_key)
            delay = self._delay(failure, retries)
            if retries >= max_retries:
                raise Retryable(
                    f"{failure.reason}; gave up after {_times(retries)}", delay=delay
                ) from _safe_cause(failure, api_key)
            self._log_retry(redact(what, api_key), failure, retries, max_retries, delay)
            await asyncio.sleep(delay)
            retries += 1


async def _finish_quietly(response: StreamResponse) -> None:
    """Read the end of a stream whose last event came (the chunked terminator usually
    follows at once), so its connection can be reused; never fails the call."""
    try:
        async with asyncio.timeout(_STREAM_END_GRACE):
            while await response.__anext__():
                pass
    except (StopAsyncIteration, HttpError, TimeoutError):
        pass


def _parsed(body: bytes, target: _Target) -> ReplyFields:
    try:
        return reply_fields(body)
    except WireError as exc:
        raise _Transient(f"{target.what}: {exc}") from exc


def _attempt_failure(
    exc: HttpError, what: str, timeout: float, api_key: str | None
) -> Exception:
    """The error for an attempt the transport failed: ``_Transient``, or ``Permanent``
    when the request itself is wrong (see :func:`_request_failure`)."""
    if isinstance(exc, HttpTimeout):
        return _Transient(f"no reply to {what} within {timeout:g}s (timeout)")
    return _request_failure(exc, what, api_key)


def _times(retries: int) -> str:
    return f"{retries} {'retry' if retries == 1 else 'retries'}"


def _endpoint(base_url: str, path: str) -> str:
    return f"{base_url.rstrip('/')}/{path}"


def _auth_lines(api_key: str | None, target: _Target) -> bytes:
    """The per-call header lines: the key as a bearer token (built for each call, so the
    key is never kept), else the credentials of ``user:password@`` in the base URL."""
    if api_key is None or api_key == "":
        return target.endpoint.basic_auth
    # visible ASCII only (0x21-0x7E): no whitespace, no control characters
    if not (api_key.isascii() and api_key.isprintable()) or " " in api_key:
        raise Permanent(
            "the API key contains whitespace or characters not allowed in an HTTP header "
            "(the value is not shown); check the secret it is read from"
        )
    return b"Authorization: Bearer %s\r\n" % api_key.encode("ascii")


def _json_payload(body: dict[str, Any], target: _Target, api_key: str | None) -> bytes:
    """``body`` as compact UTF-8 JSON (the bytes httpx sent), encoded once per call."""
    try:
        return jsoncodec.dumps(body)
    except (TypeError, ValueError) as exc:
        raise Permanent(
            redact(
                f"cannot send {target.what}: the request is not valid JSON ({exc}); "
                "check spec.model.params",
                api_key,
            )
        ) from None


def _check_status(
    status: int, reason: str, headers: Headers, body: bytes, what: str, api_key: str | None
) -> None:
    if 200 <= status < 300:
        return
    said = error_text(body)
    message = redact(f"{what} answered {status} {_phrase(status, reason)}: {said}", api_key)
    if status in RETRYABLE_STATUS:
        raise _Transient(message, parse_retry_after(headers.get("Retry-After")))
    hint = _HINTS.get(status)
    raise Permanent(f"{message} ({hint})" if hint else message)


def _phrase(status: int, sent: str | None) -> str:
    """The standard reason phrase (as httpx reported it), else the server's own."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return " ".join((sent or "").split())[:80]


def _request_failure(exc: HttpError, what: str, api_key: str | None) -> Exception:
    """An attempt that failed before a whole reply: ``Permanent`` when the request itself
    is wrong, else ``_Transient`` (connection refused, DNS, TLS, the server hung up...)."""
    cause = exc.cause if isinstance(exc, ConnectFailed) else None
    if cause is not None and not isinstance(exc, ProxyRefused):
        detail = f"{type(cause).__name__}: {str(cause) or 'no detail'}"
    else:
        detail = f"{type(exc).__name__}: {str(exc) or 'no detail'}"
    if isinstance(exc, InvalidURL):
        return Permanent(redact(f"cannot send {what}: {detail}", api_key))
    return _Transient(redact(f"cannot reach the server for {what}: {detail}", api_key))


def _safe_cause(failure: _Transient, secret: str | None) -> BaseException | None:
    """What ``failure`` was raised from, unless something in that chain shows the key."""
    cause = failure.__cause__
    if not secret:
        return cause
    node: BaseException | None = cause
    while node is not None:
        if secret in str(node) or secret in repr(node):
            return None
        node = node.__cause__ or node.__context__
    return cause
