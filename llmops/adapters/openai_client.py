"""The OpenAI-compatible model provider over HTTP; built by the runtime, evals and tests.

:class:`OpenAIClient` implements ``llmops.runtime.provider.ModelProvider`` for any server
that speaks the OpenAI chat-completions API (OpenAI, vLLM, Ollama, llama.cpp, the llmops
stub), on aiohttp: a gateway or an eval run spends well under a millisecond of CPU per
call here, where httpx's pool cost ~10 ms at 50 concurrent calls
(``benchmarks/bench_client.py``).

Sessions and event loops: an ``aiohttp.ClientSession`` belongs to the loop it was made
in, so the client opens one pooled session (keep-alive, ``max_connections``) per event
loop, lazily, on that loop's first call. ``aclose()`` closes them all. A session whose
loop ends first (``asyncio.run`` returns, an ``asyncio.Runner`` closes) is closed as the
loop shuts down its async generators, so a client reused across ``asyncio.run`` calls
works and leaks nothing. After ``aclose()`` the client refuses new calls.

Retries: 408, 409, 429, 500, 502, 503, 504 (and 529), timeouts, connection errors and
malformed replies are retried up to ``max_retries`` times with exponential backoff and
full jitter, or after the server's ``Retry-After`` (capped). Any other 4xx is
``Permanent`` at once. When retries run out the error is ``Retryable`` and says what was
tried (``POST <url>``, without credentials) and what went wrong. The API key travels only
in the ``Authorization`` header: it is never logged, never stored on the client and
scrubbed from every message and from the exceptions chained to ours.

Proxies: like httpx before it, the client honours ``HTTP_PROXY``/``HTTPS_PROXY``/
``ALL_PROXY`` and ``NO_PROXY`` as they are when it is built (HTTP proxies; credentials in
the proxy URL are sent as proxy basic auth). ``~/.netrc`` is not read.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import http
import json
import logging
import math
import os
import random
import re
import ssl
import time
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import aiohttp
from yarl import URL

from llmops import __version__
from llmops.adapters.openai_wire import (
    Chunk,
    Reply,
    WireError,
    chat_body,
    error_text,
    parse_chunk,
    parse_embeddings,
    parse_reply,
    redact,
)
from llmops.adapters.retry import RETRYABLE_STATUS, backoff_delay, parse_retry_after
from llmops.adapters.sse import LineSplitter, LineTooLong, SSEDecoder
from llmops.domain.chat import ChatRequest, ChatResponse, Usage
from llmops.domain.errors import Permanent, Retryable

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ``(model, prompt_tokens, completion_tokens) -> USD``; ``llmops.runtime.pricing.PriceTable``.
Pricer = Callable[[str, int, int], float]

_HINTS = {
    401: "check the API key (spec.model.apiKey)",
    403: "the API key is not allowed to use this model or endpoint",
    404: "check spec.model.baseUrl and the model name",
}

#: Endpoints remembered per client (parsed URL, proxy); more distinct ones clear the memo.
_MAX_TARGETS = 256

#: The JSON httpx sent: compact, UTF-8, no NaN; one encoder for every call.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

_USERINFO = re.compile(r"(?<=//)[^/?#]*@")  # user:password@ (up to the last @)


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """The default TLS context, built once per process as httpx builds it: the CAs of
    ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set, else certifi's bundle (else the
    system store). Building one takes a noticeable fraction of a second."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


@functools.lru_cache(maxsize=64)
def _whole_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """Connect, send and read the whole reply within ``seconds`` (not rounded up)."""
    return aiohttp.ClientTimeout(total=seconds, ceil_threshold=math.inf)


@functools.lru_cache(maxsize=64)
def _stream_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """Wait at most ``seconds`` for a connection and for each piece of data."""
    return aiohttp.ClientTimeout(
        total=None, connect=seconds, sock_read=seconds, ceil_threshold=math.inf
    )


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
    """One endpoint, resolved once: the URL aiohttp is given, how messages name the
    call (``POST <url>`` without credentials) and the proxy from the environment, with its
    credentials: on the CONNECT request for https (``proxy_headers``), on the request
    itself for plain http (``forward_headers``)."""

    url: URL
    what: str
    proxy: URL | None = None
    proxy_headers: Mapping[str, str] | None = None
    forward_headers: Mapping[str, str] | None = None


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
        self._keepalive_expiry = keepalive_expiry
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._retry_after_cap = retry_after_cap
        self._embed_timeout = embed_timeout_seconds
        self._embed_max_retries = embed_max_retries
        self._rng = random.Random(seed)
        self._ssl_context = ssl_context
        self._proxies = _environment_proxies()
        self._targets: dict[tuple[str, str], _Target] = {}
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._keepers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"OpenAIClient(max_connections={self._max_connections})"

    async def __aenter__(self) -> Self:
        if self._closed:
            raise RuntimeError("this OpenAIClient is closed; create a new one")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections (in every event loop the client was used in)."""
        self._closed = True
        keepers, self._keepers, self._sessions = self._keepers, {}, {}
        here = asyncio.get_running_loop()
        for loop, keeper in keepers.items():
            if loop is here:
                await keeper.aclose()
            elif loop.is_running():
                # another thread's loop: close its session there, without waiting for it
                with contextlib.suppress(RuntimeError):  # that loop closed meanwhile
                    asyncio.run_coroutine_threadsafe(_finish(keeper), loop)
            # a loop that is not running closes its session when it shuts down

    # -- chat -------------------------------------------------------------------------

    async def complete(self, request: ChatRequest, api_key: str | None = None) -> ChatResponse:
        """One reply; ``latency_ms`` covers every attempt and the waits between them."""
        target = self._target(request.base_url, "chat/completions", api_key)
        headers = _headers(api_key, target)
        payload = _json_payload(chat_body(request, stream=False), target, api_key)
        timeout = request.timeout_seconds
        started = time.perf_counter()

        async def attempt() -> Reply:
            body = await self._post(target, payload, headers, timeout, api_key)
            try:
                return parse_reply(body)
            except WireError as exc:
                raise _Transient(f"{target.what}: {exc}") from exc

        reply, retries = await self._retrying(target.what, request.max_retries, api_key, attempt)
        return ChatResponse(
            content=reply.content,
            usage=self._usage(request.model, reply.prompt_tokens, reply.completion_tokens),
            model=reply.model or request.model,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            retries=retries,
            finish_reason=reply.finish_reason,
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
        target = self._target(request.base_url, "chat/completions", api_key)
        headers = _headers(api_key, target)
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
        headers: Mapping[str, str] | None,
        request: ChatRequest,
        api_key: str | None,
        handle: ChatStream,
    ) -> AsyncGenerator[str, None]:
        timeout = request.timeout_seconds
        session = await self._session()
        try:
            response = await session.post(
                target.url,
                data=payload,
                headers=headers,
                timeout=_stream_timeout(timeout),
                allow_redirects=False,
                proxy=target.proxy,
                proxy_headers=target.proxy_headers,
            )
        except TimeoutError as exc:
            raise _Transient(f"no reply to {target.what} within {timeout:g}s (timeout)") from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise _request_failure(exc, target.what, api_key) from exc
        chunks = 0
        finished = False  # read to its end: the connection may be reused
        try:
            if response.status >= 300:
                body = await response.read()
                finished = True
                _check_status(response, body, target.what, api_key)
            if "json" in response.headers.get("Content-Type", ""):
                # a server that ignores ``stream: true`` answers with one whole completion
                reply = parse_reply(await response.read())
                finished = True
                handle.model, handle.finish_reason = reply.model, reply.finish_reason
                handle.usage = self._usage(
                    request.model, reply.prompt_tokens, reply.completion_tokens
                )
                if reply.content:
                    yield reply.content
                return
            lines, decoder = LineSplitter(), SSEDecoder()
            done = False
            async for data in response.content.iter_any():
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
            finished = True
        except WireError as exc:
            raise _Transient(f"{target.what}: {exc}") from exc
        except LineTooLong as exc:
            raise _Transient(f"the stream from {target.what}: {exc}") from exc
        except TimeoutError as exc:
            raise _Transient(
                f"the stream from {target.what} stalled: no data within {timeout:g}s "
                f"after {chunks} chunks"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise _Transient(
                f"the stream from {target.what} was cut off after {chunks} chunks "
                f"({type(exc).__name__}; the reply is truncated)"
            ) from exc
        finally:
            if finished:
                response.release()
            else:  # stopped early or failed: the rest of the body is not wanted
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
        target = self._target(base_url, "embeddings", api_key)
        headers = _headers(api_key, target)
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
        headers: Mapping[str, str] | None,
        timeout: float,
        api_key: str | None,
    ) -> bytes:
        """One attempt: the 2xx reply's body, or ``_Transient``/``Permanent``."""
        session = await self._session()
        try:
            async with session.post(
                target.url,
                data=payload,
                headers=headers,
                timeout=_whole_timeout(timeout),
                allow_redirects=False,
                proxy=target.proxy,
                proxy_headers=target.proxy_headers,
            ) as response:
                body = await response.read()
        except TimeoutError as exc:
            raise _Transient(f"no reply to {target.what} within {timeout:g}s (timeout)") from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise _request_failure(exc, target.what, api_key) from exc
        _check_status(response, body, target.what, api_key)
        return body

    async def _session(self) -> aiohttp.ClientSession:
        session = self._sessions.get(asyncio.get_running_loop())
        if session is not None and not session.closed:
            return session
        return await self._open()

    async def _open(self) -> aiohttp.ClientSession:
        """This loop's session, opened now; it closes with the loop if not before."""
        if self._closed:
            raise RuntimeError("this OpenAIClient is closed; create a new one")
        loop = asyncio.get_running_loop()
        for old in [other for other in list(self._sessions) if other.is_closed()]:
            self._sessions.pop(old, None)
            self._keepers.pop(old, None)
        context = self._ssl_context or default_ssl_context()
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self._max_connections,
                keepalive_timeout=self._keepalive_expiry,
                ssl=context,
            ),
            headers={
                "User-Agent": f"llmops/{__version__}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
        )
        keeper = _close_with_loop(session)
        await anext(keeper)  # now registered with the loop, which closes it on shutdown
        self._sessions[loop] = session
        self._keepers[loop] = keeper
        return session

    def _target(self, base_url: str, path: str, api_key: str | None) -> _Target:
        found = self._targets.get((base_url, path))
        if found is not None:
            return found
        raw = _endpoint(base_url, path)
        what = f"POST {_USERINFO.sub('', raw)}"
        try:
            url = URL(raw)
            usable = url.scheme in ("http", "https") and bool(url.host)
        except (TypeError, ValueError):
            usable = False
        if not usable:
            raise Permanent(
                redact(
                    f"cannot send {what}: the URL must start with http:// or https:// and "
                    "name a host (check spec.model.baseUrl)",
                    api_key,
                )
            )
        proxy, login = _proxy_for(url, self._proxies)
        if login is None:
            found = _Target(url, what, proxy)
        elif url.scheme == "https":
            found = _Target(url, what, proxy, proxy_headers=login)
        else:
            found = _Target(url, what, proxy, forward_headers=login)
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
    ) -> tuple[T, int]:
        retries = 0
        while True:
            try:
                return await attempt(), retries
            except _Transient as failure:
                failure.scrub(api_key)
                delay = self._delay(failure, retries)
                if retries >= max_retries:
                    raise Retryable(
                        f"{failure.reason}; gave up after {_times(retries)}", delay=delay
                    ) from _safe_cause(failure, api_key)
                self._log_retry(redact(what, api_key), failure, retries, max_retries, delay)
                await asyncio.sleep(delay)
                retries += 1


async def _close_with_loop(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Holds ``session`` open; closing this generator closes it. The loop that first ran
    it closes it when the loop shuts down (``asyncio.run``, ``asyncio.Runner``), and
    when it is garbage-collected."""
    try:
        yield
    finally:
        await session.close()


async def _finish(keeper: AsyncGenerator[None, None]) -> None:
    await keeper.aclose()


def _times(retries: int) -> str:
    return f"{retries} {'retry' if retries == 1 else 'retries'}"


def _endpoint(base_url: str, path: str) -> str:
    return f"{base_url.rstrip('/')}/{path}"


def _headers(api_key: str | None, target: _Target) -> dict[str, str] | None:
    """The headers of one call besides the session's: the key, and the proxy's
    credentials when a plain-http request goes through a proxy."""
    headers = _auth_headers(api_key)
    if target.forward_headers is not None:
        return {**(headers or {}), **target.forward_headers}
    return headers


def _auth_headers(api_key: str | None) -> dict[str, str] | None:
    if api_key is None or api_key == "":
        return None
    # visible ASCII only (0x21-0x7E): no whitespace, no control characters
    if not (api_key.isascii() and api_key.isprintable()) or " " in api_key:
        raise Permanent(
            "the API key contains whitespace or characters not allowed in an HTTP header "
            "(the value is not shown); check the secret it is read from"
        )
    return {"Authorization": f"Bearer {api_key}"}


def _json_payload(body: dict[str, Any], target: _Target, api_key: str | None) -> bytes:
    """``body`` as compact UTF-8 JSON (the bytes httpx sent), encoded once per call."""
    try:
        text = _JSON.encode(body)
    except (TypeError, ValueError) as exc:
        raise Permanent(
            redact(
                f"cannot send {target.what}: the request is not valid JSON ({exc}); "
                "check spec.model.params",
                api_key,
            )
        ) from None
    return text.encode()


def _check_status(
    response: aiohttp.ClientResponse, body: bytes, what: str, api_key: str | None
) -> None:
    status = response.status
    if 200 <= status < 300:
        return
    said = error_text(body)
    message = redact(
        f"{what} answered {status} {_phrase(status, response.reason)}: {said}", api_key
    )
    if status in RETRYABLE_STATUS:
        raise _Transient(message, parse_retry_after(response.headers.get("Retry-After")))
    hint = _HINTS.get(status)
    raise Permanent(f"{message} ({hint})" if hint else message)


def _phrase(status: int, sent: str | None) -> str:
    """The standard reason phrase (as httpx reported it), else the server's own."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return " ".join((sent or "").split())[:80]


def _request_failure(exc: BaseException, what: str, api_key: str | None) -> Exception:
    """An attempt that failed before a reply: ``Permanent`` when the request itself is
    wrong, else ``_Transient`` (connection refused, DNS, TLS, the server hung up...)."""
    cause = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", None)
    detail = f"{type(exc).__name__}: {str(cause if cause is not None else exc) or 'no detail'}"
    if isinstance(exc, aiohttp.InvalidURL) or not isinstance(exc, aiohttp.ClientError | OSError):
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


def _environment_proxies() -> dict[str, str]:
    """``{"http"|"https"|"all": proxy URL, "no": NO_PROXY}`` from the environment."""
    found = urllib.request.getproxies_environment()
    return {k: v for k, v in found.items() if k in ("http", "https", "all", "no") and v}


def _proxy_for(url: URL, proxies: Mapping[str, str]) -> tuple[URL | None, dict[str, str] | None]:
    """The proxy for ``url`` and, when the proxy URL carries credentials, the basic-auth
    ``Proxy-Authorization`` header for them (the credentials are never in messages)."""
    if not proxies or url.host is None or _no_proxy(url.host, url.port, proxies.get("no", "")):
        return None, None
    chosen = proxies.get(url.scheme) or proxies.get("all")
    if not chosen:
        return None, None
    proxy = URL(chosen if "://" in chosen else f"http://{chosen}")
    if proxy.user is None:
        return proxy, None
    token = base64.b64encode(f"{proxy.user}:{proxy.password or ''}".encode()).decode()
    return proxy.with_user(None), {"Proxy-Authorization": f"Basic {token}"}


def _no_proxy(host: str, port: int | None, no_proxy: str) -> bool:
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
