"""HTTP client of a served llmops app: ``POST <base>/v1/apps/<app>/invoke`` and
``GET <base>/v1/models``; used by ``llmops.evals.remote`` (evals against a deployed app,
the post-deploy verify of blue/green deploys, ``llmops eval --endpoint``).

One pooled aiohttp session per client (keep-alive, at most ``max_connections`` sockets),
opened lazily in the event loop of the first call; ``aclose()`` closes it. At most
``max_connections`` requests are in flight at once (a semaphore in front of the pool, so
a caller with more tasks waits instead of queueing inside aiohttp, and the measured
latency starts when the request is sent, not while it waits for a slot).

Answers: a 2xx is an :class:`InvokeReply` with the output; any other status the runtime
answers with its error body (``{"error": {"type", "message", "code", "guardrail",
"side"}}``) is an :class:`InvokeReply` too, with ``ok`` False — a guardrail block is an
answer of the app, not a failure of the call. What is not an answer raises: the server
cannot be reached or hangs up (``Retryable`` "cannot reach …", after ``retries`` more
tries of a request that never got a reply), no reply within the timeout (``Retryable``),
or a reply that is not the runtime's JSON (``Permanent``). No proxy settings or
``~/.netrc`` are read: the endpoint is usually an address of the deployment itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Self, TypeGuard
from urllib.parse import quote

import aiohttp
from yarl import URL

from llmops import __version__
from llmops.domain.chat import Usage
from llmops.domain.errors import Permanent, Retryable

DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 5.0
_MAX_BODY_SHOWN = 200


@dataclass(frozen=True, slots=True)
class InvokeReply:
    """One answer of ``/v1/apps/<app>/invoke``.

    ``output`` is the runtime's ``output`` field (text, or the parsed JSON of an app with
    an output schema); ``latency_ms`` is measured here, from sending the request to
    reading the whole body. For a non-2xx answer ``output`` is None and ``error_type``,
    ``error_code``, ``message`` (and for a guardrail block ``guardrail`` and ``side``)
    come from the error body.
    """

    status: int
    output: Any = None
    release: str | None = None
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    server_latency_ms: float | None = None
    request_id: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    message: str = ""
    guardrail: str | None = None
    side: str | None = None
    retries: int = 0

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def blocked(self) -> bool:
        """A guardrail of the app refused the request (400) or the model's reply (502)."""
        return not self.ok and self.error_type == "guardrail" and self.guardrail is not None


def endpoint_problem(base_url: str) -> str | None:
    """Why ``base_url`` cannot be a runtime's root URL, or None when it can."""
    try:
        url = URL(base_url)
    except (TypeError, ValueError):
        return "it is not a URL"
    if url.scheme not in ("http", "https") or not url.host:
        return "it must start with http:// or https:// and name a host"
    if url.query_string or url.fragment:
        return "it must not have a query or fragment"
    return None


class InvokeClient:
    """A pooled client of one runtime at ``base_url`` (its root, e.g.
    ``http://127.0.0.1:8080``); use it from one event loop, ``aclose()`` when done."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 8,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retries: int = 1,
    ) -> None:
        problem = endpoint_problem(base_url)
        if problem is not None:
            raise Permanent(
                f"cannot use endpoint {base_url!r}: {problem} (e.g. http://127.0.0.1:8080)"
            )
        if max_connections < 1 or timeout <= 0 or connect_timeout <= 0 or retries < 0:
            raise ValueError("max_connections ≥ 1, timeouts > 0 and retries ≥ 0")
        self.base_url = base_url.rstrip("/")
        self.max_connections = max_connections
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"InvokeClient({self.base_url!r}, max_connections={self.max_connections})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    # -- calls ------------------------------------------------------------------------

    async def apps(self) -> dict[str, str | None]:
        """The apps served at the endpoint and the release of each (``GET /v1/models``)."""
        what = f"GET {self.base_url}/v1/models"
        status, body, _, _ = await self._request("GET", "/v1/models", None, self.timeout, what)
        data = _json_object(body)
        if status != 200 or data is None or not isinstance(data.get("data"), list):
            hint = (
                "; give the runtime's root URL, without /v1"
                if self.base_url.endswith("/v1")
                else ""
            )
            raise Permanent(
                f"{what} answered {status} {_shown(body)}: {self.base_url} does not look like "
                f"an llmops runtime{hint}"
            )
        found: dict[str, str | None] = {}
        for entry in data["data"]:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                release = entry.get("release")
                found[entry["id"]] = release if isinstance(release, str) else None
        return found

    async def invoke(
        self, app: str, inputs: dict[str, Any], *, timeout: float | None = None
    ) -> InvokeReply:
        """Send ``inputs`` to ``app``; the answer, whatever its status (see the module)."""
        path = f"/v1/apps/{quote(app, safe='')}/invoke"
        what = f"POST {self.base_url}{path}"
        payload = json.dumps({"inputs": inputs}, ensure_ascii=False).encode()
        status, body, took, retries = await self._request(
            "POST", path, payload, timeout or self.timeout, what
        )
        data = _json_object(body)
        if data is None:
            raise Permanent(
                f"{what} answered {status} with {_shown(body)}, not an llmops runtime's "
                f"JSON; check that {self.base_url} is an llmops runtime"
            )
        if 200 <= status < 300:
            if "output" not in data:
                raise Permanent(f"{what} answered {status} without an 'output' field")
            release = data.get("release")
            server_ms = data.get("latency_ms")
            request_id = data.get("request_id")
            return InvokeReply(
                status=status,
                output=data["output"],
                release=release if isinstance(release, str) else None,
                usage=_usage(data.get("usage")),
                latency_ms=took,
                server_latency_ms=float(server_ms) if _number(server_ms) else None,
                request_id=request_id if isinstance(request_id, str) else None,
                retries=retries,
            )
        error = data.get("error")
        error = error if isinstance(error, dict) else {}
        return InvokeReply(
            status=status,
            latency_ms=took,
            error_type=_text(error.get("type")),
            error_code=_text(error.get("code")),
            message=_text(error.get("message")) or _shown(body),
            guardrail=_text(error.get("guardrail")),
            side=_text(error.get("side")),
            retries=retries,
        )

    # -- HTTP -------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, payload: bytes | None, timeout: float, what: str
    ) -> tuple[int, bytes, float, int]:
        """(status, body, milliseconds, retries) of one request; retried only when no
        reply came back (connection refused or reset), never after an answer."""
        session, slots = self._open()
        attempt = 0
        while True:
            async with slots:
                started = time.perf_counter()
                try:
                    async with session.request(
                        method,
                        self.base_url + path,
                        data=payload,
                        timeout=aiohttp.ClientTimeout(
                            total=timeout, sock_connect=min(self.connect_timeout, timeout)
                        ),
                        allow_redirects=False,
                    ) as response:
                        body = await response.read()
                    return response.status, body, (time.perf_counter() - started) * 1000, attempt
                except TimeoutError as exc:
                    raise Retryable(f"no reply to {what} within {timeout:g}s") from exc
                except (aiohttp.ClientError, OSError) as exc:
                    if attempt >= self.retries or isinstance(exc, aiohttp.InvalidURL):
                        raise Retryable(
                            f"cannot reach {self.base_url} ({what}): {_detail(exc)}"
                        ) from exc
            attempt += 1
            await asyncio.sleep(min(0.2 * attempt, 1.0))

    def _open(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        if self._closed:
            raise RuntimeError("this InvokeClient is closed; create a new one")
        if self._session is None or self._session.closed or self._slots is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=30.0),
                headers={
                    "User-Agent": f"llmops/{__version__}",
                    "Accept": "application/json",
                    "Content-Type": "application/json",
                },
                trust_env=False,
            )
            self._slots = asyncio.Semaphore(self.max_connections)
        return self._session, self._slots


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()

    def count(name: str) -> int:
        value = raw.get(name)
        return int(value) if _number(value) else 0

    cost = raw.get("cost_usd")
    spent = float(cost) if _number(cost) else 0.0
    return Usage(count("prompt_tokens"), count("completion_tokens"), spent)


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _shown(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    if not text:
        return "an empty body"
    return repr(text[:_MAX_BODY_SHOWN] + ("…" if len(text) > _MAX_BODY_SHOWN else ""))


def _detail(exc: BaseException) -> str:
    cause = getattr(exc, "os_error", None)
    text = str(cause if cause is not None else exc) or type(exc).__name__
    return f"{type(exc).__name__}: {' '.join(text.split())}"
