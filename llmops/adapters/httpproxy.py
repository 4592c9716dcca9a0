"""The HTTP plumbing shared by the two stable-port proxies: the local target's supervisor
(``llmops.adapters.supervisor``) and the docker target's proxy
(``llmops.adapters.docker_proxy``).

Request bodies read whole (up to ``MAX_BODY``), hop-by-hop headers dropped both ways, the
colour header on every answer, answers streamed as they come, the control socket's error
middleware, and listening on the stable port plus the unix control socket (mode 0600).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

#: every answer through the stable port says which colour served it
COLOUR_HEADER = "X-Llmops-Colour"
MAX_BODY = 32 * 1024 * 1024
#: the methods a proxy sends again when a connection closes under them
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
#: a connection that closed under a request before its answer came (not a refused one)
DISCONNECTS = (
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
    aiohttp.ClientConnectionResetError,
)
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def log(message: str, **fields: Any) -> None:
    """One JSON line on stderr (the proxy's log file)."""
    line = {"time": now(), "message": message, **fields}
    sys.stderr.write(json.dumps(line, default=str) + "\n")
    sys.stderr.flush()


def forward_headers(headers: Any) -> list[tuple[str, str]]:
    """``headers`` (a multidict) without hop-by-hop headers and those ``Connection`` names."""
    named = {
        token.strip().lower()
        for value in headers.getall("Connection", [])
        for token in value.split(",")
    }
    return [
        (name, value)
        for name, value in headers.items()
        if name.lower() not in _HOP_BY_HOP and name.lower() not in named
    ]


class BadCommand(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TooLarge(Exception):
    pass


async def read_body(request: web.BaseRequest) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge
        parts.append(chunk)


def new_session() -> aiohttp.ClientSession:
    """A pooled client session to one upstream port.

    aiohttp sends an idempotent request once more, at once, when a connection closes
    under it; the proxies decide that themselves (a second immediate send can reach a
    backend that is dying, and a request that crashes its backend must not be sent to
    each restart), so that hidden retry is turned off. It has no public switch; its
    private one is covered by the supervisor's tests, which count the sends."""
    session = aiohttp.ClientSession(
        # shorter than uvicorn's 5 s keep-alive: an idle pooled connection is
        # dropped here before the upstream closes it under a new request
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=2.0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=2.0),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    session._retry_connection = False
    return session


def upstream_request(
    session: aiohttp.ClientSession, request: web.BaseRequest, host: str, port: int, body: bytes
) -> Any:
    """``request`` sent on to ``host:port`` (an ``async with`` context giving the answer)."""
    url = URL(f"http://{host}:{port}{request.raw_path}", encoded=True)
    headers = forward_headers(request.headers)
    headers.append(("X-Forwarded-For", request.remote or ""))
    headers.append(("X-Forwarded-Host", request.host))
    return session.request(
        request.method,
        url,
        headers=headers,
        data=body or None,
        allow_redirects=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
    )


async def stream_answer(
    request: web.BaseRequest,
    upstream: aiohttp.ClientResponse,
    colour: str,
    *,
    who: str,
    server: str | None = None,
) -> web.StreamResponse:
    """``upstream``'s answer streamed to the client as it comes, with the colour header."""
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    for name, value in forward_headers(upstream.headers):
        response.headers.add(name, value)
    response.headers[COLOUR_HEADER] = colour
    if server is not None:
        response.headers.setdefault("Server", server)  # not aiohttp's name and version
    chunked = "chunked" in upstream.headers.get("Transfer-Encoding", "").lower()
    if upstream.content_length is not None and not chunked:
        response.content_length = upstream.content_length
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
    except ConnectionResetError:  # the client went away
        return response
    except aiohttp.ClientError as exc:  # the upstream broke off mid-answer
        raise ConnectionError(f"the {who} broke off the answer: {exc}") from exc
    await response.write_eof()
    return response


@web.middleware
async def command_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """The control socket's errors: ``{"error": message}`` with the command's status."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except BadCommand as exc:
        return web.json_response({"error": exc.message}, status=exc.status)
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": f"bad request: {exc}"}, status=400)


async def listen(
    handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
    control_app: web.Application,
    host: str,
    port: int,
    control: Path,
    stop_requested: asyncio.Event,
) -> tuple[web.BaseRunner, web.BaseRunner] | None:
    """Serve ``handler`` on ``host:port`` and ``control_app`` on the unix socket ``control``
    (mode 0600), SIGTERM/SIGINT setting ``stop_requested``; None when the port is taken."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    proxy_runner = web.ServerRunner(
        web.Server(handler, keepalive_timeout=75.0, auto_decompress=False),
        handle_signals=False,
        shutdown_timeout=15.0,
    )
    await proxy_runner.setup()
    try:
        await web.TCPSite(proxy_runner, host, port, reuse_address=True).start()
    except OSError as exc:
        log("cannot listen", host=host, port=port, error=exc.strerror or str(exc))
        await proxy_runner.cleanup()
        return None
    control_runner = web.AppRunner(control_app, access_log=None, shutdown_timeout=5.0)
    await control_runner.setup()
    with contextlib.suppress(FileNotFoundError):
        control.unlink()
    old_umask = os.umask(0o177)
    try:
        await web.UnixSite(control_runner, str(control)).start()
    finally:
        os.umask(old_umask)
    return proxy_runner, control_runner


async def close_control(control_runner: web.BaseRunner, control: Path) -> None:
    await control_runner.cleanup()
    with contextlib.suppress(FileNotFoundError):
        control.unlink()
    log("stopped")


class StablePort:
    """What both proxies know of themselves: the app, its stable port and control socket."""

    def __init__(
        self,
        directory: Path,
        app: str,
        env: str,
        port: int,
        control: Path,
        *,
        host: str = "127.0.0.1",
        connect_wait: float = 10.0,
    ) -> None:
        self.dir = directory
        self.app = app
        self.env = env
        self.port = port
        self.control = control
        self.host = host
        self.connect_wait = connect_wait
        self.closing = False
        self.stop_requested = asyncio.Event()
        self.started = now()

    def process_info(self) -> dict[str, Any]:
        """This process as the state file records it."""
        return {
            "pid": os.getpid(),
            "host": self.host,
            "port": self.port,
            "control": str(self.control),
            "started": self.started,
            "argv": sys.argv,
        }


def arguments(prog: str, description: str) -> argparse.ArgumentParser:
    """The command line both proxies take (the deploy targets' ``proxy_argv``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--dir", required=True, type=Path, help="The app's state directory.")
    parser.add_argument("--app", required=True)
    parser.add_argument("--env", required=True)
    parser.add_argument("--port", required=True, type=int, help="The stable port to listen on.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--control", required=True, type=Path, help="The unix control socket.")
    parser.add_argument("--connect-wait", type=float, default=10.0)
    return parser


def stable_port_options(args: argparse.Namespace) -> dict[str, Any]:
    """``StablePort``'s arguments from the parsed command line."""
    return {
        "directory": args.dir.resolve(),
        "app": args.app,
        "env": args.env,
        "port": args.port,
        "control": Path(os.path.abspath(args.control)),
        "host": args.host,
        "connect_wait": args.connect_wait,
    }
