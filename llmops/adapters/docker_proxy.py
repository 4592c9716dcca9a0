"""``python -m llmops.adapters.docker_proxy``: the stable port of one app of a ``docker``
environment, forwarding every HTTP request to the active colour's container.

Started detached (its own session) by ``llmops.deploy.docker`` and outliving the CLI. The
containers are Docker's (their restart policy restarts them); this process only

- listens on the app's stable port (127.0.0.1) and forwards each request to
  ``127.0.0.1:<active port>``, the port the active colour's container is published on,
  adding ``X-Llmops-Colour`` to every answer;
- takes commands on a unix control socket (JSON over HTTP, mode 0600): ``GET /status``,
  ``PUT /active`` ``{"colour", "port"}`` (switch), ``DELETE /backends/<port>?drain=S``
  (wait until no request is in flight to that port, at most ``S`` seconds; refused for
  the active port), ``POST /shutdown``;
- writes ``<dir>/proxy.json`` (its PID, ports, the active colour; never a request or an
  environment value) atomically after every change.

It is the local target's supervisor without the child processes: the same per-request
switch (a keep-alive client moves to the new colour with its next request, no connection
is cut) and the same header handling (``llmops.adapters.supervisor.forward_headers``).
A request that finds the active port refusing connections (the container restarting)
waits up to ``--connect-wait`` seconds for it, since a refused connection never reached
the app.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from llmops.adapters.httpproxy import (
    DISCONNECTS,
    IDEMPOTENT,
    MAX_BODY,
    BadCommand,
    StablePort,
    TooLarge,
    arguments,
    close_control,
    command_errors,
    listen,
    log,
    new_session,
    read_body,
    stable_port_options,
    stream_answer,
    upstream_request,
)
from llmops.adapters.process import write_json_atomic

STATE_FILE = "proxy.json"
STATE_VERSION = 1
COLOURS = ("blue", "green")


_BadCommand = BadCommand
_TooLarge = TooLarge
_IDEMPOTENT = IDEMPOTENT


class Proxy(StablePort):
    """The stable port of one app: where requests go, and how many are in flight where."""

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
        active: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(directory, app, env, port, control, host=host, connect_wait=connect_wait)
        self.active_colour: str | None = active[0] if active else None
        self.active_port: int | None = active[1] if active else None
        self.inflight: dict[int, int] = {}
        self.sessions: dict[int, aiohttp.ClientSession] = {}

    # --- state ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "app": self.app,
            "env": self.env,
            "proxy": self.process_info(),
            "active": self.active_colour,
            "active_port": self.active_port,
            "stopped": self.closing,
        }

    def status(self) -> dict[str, Any]:
        return {**self.snapshot(), "inflight": {str(p): n for p, n in self.inflight.items() if n}}

    def save(self) -> None:
        write_json_atomic(self.dir / STATE_FILE, self.snapshot())

    async def switch(self, colour: str, port: int) -> None:
        if colour not in COLOURS:
            raise _BadCommand(400, f"no colour {colour!r} (blue or green)")
        previous = self.active_colour
        self.active_colour, self.active_port = colour, port
        log("switched", active=colour, port=port, previous=previous)
        self.save()

    async def drain(self, port: int, seconds: float) -> bool:
        """Wait until nothing is in flight to ``port`` (at most ``seconds``); True when idle."""
        if port == self.active_port:
            raise _BadCommand(409, f"port {port} is the active colour's; switch away first")
        deadline = time.monotonic() + seconds
        while self.inflight.get(port, 0) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        idle = not self.inflight.get(port, 0)
        if idle:
            session = self.sessions.pop(port, None)
            if session is not None:
                await session.close()
        log("drained", port=port, idle=idle)
        return idle

    def _session(self, port: int) -> aiohttp.ClientSession:
        session = self.sessions.get(port)
        if session is None or session.closed:
            session = new_session()
            self.sessions[port] = session
        return session

    # --- control --------------------------------------------------------------------------
    def control_app(self) -> web.Application:
        async def status(request: web.Request) -> web.Response:
            return web.json_response(self.status())

        async def active(request: web.Request) -> web.Response:
            body = await request.json()
            if not isinstance(body, dict):
                raise _BadCommand(400, "the body must be a JSON object")
            port = body.get("port")
            if not isinstance(port, int) or not 0 < port < 65536:
                raise _BadCommand(400, "port must be a TCP port number")
            await self.switch(str(body.get("colour")), port)
            return web.json_response(self.status())

        async def drain(request: web.Request) -> web.Response:
            port = int(request.match_info["port"])
            seconds = float(request.query.get("drain", "30"))
            idle = await self.drain(port, seconds)
            return web.json_response({**self.status(), "drained": idle})

        async def shutdown(request: web.Request) -> web.Response:
            self.stop_requested.set()
            return web.json_response({"stopping": True}, status=202)

        app = web.Application(middlewares=[command_errors])
        app.router.add_get("/status", status)
        app.router.add_put("/active", active)
        app.router.add_delete("/backends/{port}", drain)
        app.router.add_post("/shutdown", shutdown)
        return app

    # --- proxy ----------------------------------------------------------------------------
    async def proxy(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            body = await _read_body(request)
        except _TooLarge:
            return _problem(413, "too_large", f"request bodies are limited to {MAX_BODY} bytes")
        deadline = time.monotonic() + self.connect_wait
        retried = False
        while True:
            colour, port = self.active_colour, self.active_port
            if self.closing or colour is None or port is None:
                return _problem(503, "unavailable", f"no release of {self.app} is active here")
            self.inflight[port] = self.inflight.get(port, 0) + 1
            try:
                return await self._forward(request, body, colour, port)
            except aiohttp.ClientConnectorError as exc:
                if time.monotonic() >= deadline:
                    return _problem(
                        502, "bad_gateway", f"cannot reach the {colour} container: {exc}"
                    )
            except DISCONNECTS as exc:
                if request.method not in _IDEMPOTENT or retried:
                    return _problem(
                        502, "bad_gateway", f"the {colour} container closed the connection: {exc}"
                    )
                retried = True
                continue
            except aiohttp.ClientError as exc:
                return _problem(502, "bad_gateway", f"the {colour} container failed: {exc}")
            finally:
                self.inflight[port] -= 1
            await asyncio.sleep(0.05)

    async def _forward(
        self, request: web.BaseRequest, body: bytes, colour: str, port: int
    ) -> web.StreamResponse:
        async with upstream_request(
            self._session(port), request, "127.0.0.1", port, body
        ) as upstream:
            return await stream_answer(request, upstream, colour, who="container")

    # --- life -----------------------------------------------------------------------------
    async def run(self) -> int:
        runners = await listen(
            self.proxy, self.control_app(), self.host, self.port, self.control, self.stop_requested
        )
        if runners is None:
            return 3
        proxy_runner, control_runner = runners
        self.save()
        log("proxying", app=self.app, env=self.env, url=f"http://{self.host}:{self.port}")
        await self.stop_requested.wait()
        log("stopping")
        self.closing = True
        self.save()
        await proxy_runner.cleanup()  # lets the requests in flight finish
        for session in self.sessions.values():
            await session.close()
        await close_control(control_runner, self.control)
        return 0


_read_body = read_body


def _problem(status: int, kind: str, message: str) -> web.Response:
    """An error answer in the runtime's shape: ``{"error": {"type", "message"}}``."""
    return web.json_response({"error": {"type": kind, "message": message}}, status=status)


def _active(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    colour, _, port = text.partition(":")
    if colour not in COLOURS or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--active {text!r}: give COLOUR:PORT, e.g. blue:18081")
    return colour, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = arguments(
        "python -m llmops.adapters.docker_proxy",
        "The stable port of one app of a docker environment (started by llmops apply).",
    )
    parser.add_argument("--active", default=None, help="COLOUR:PORT to serve from the start.")
    args = parser.parse_args(argv)
    try:
        active = _active(args.active)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    proxy = Proxy(**stable_port_options(args), active=active)
    return asyncio.run(proxy.run())


if __name__ == "__main__":
    sys.exit(main())
