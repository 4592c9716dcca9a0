"""The controller's HTTP endpoints (Starlette on uvicorn, in a thread); built and started
by ``llmops.controller.run`` and by tests.

``GET /healthz``: 200 while the work loop and the election are running (else 503, and
the kubelet restarts the pod). ``GET /readyz``: 200 for a follower (it is waiting for the
lease, which is its job), and for the leader while its last pass succeeded within the
ready window, while it became leader within that window, or while a pass is in flight
after a good one; else 503. ``GET /metrics``: Prometheus text. ``POST /webhook/github``:
see ``llmops.controller.webhook``. Every request is one JSON log line (never headers or
bodies).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llmops.controller import webhook
from llmops.controller.leader import Election
from llmops.controller.loop import Loop
from llmops.controller.metrics import ControllerMetrics
from llmops.domain.errors import UsageError
from llmops.runtime.logs import JsonLogger


@dataclass
class ControllerState:
    """What the endpoints read: the loop, the election, metrics, the webhook settings."""

    loop: Loop
    election: Election
    metrics: ControllerMetrics
    logger: JsonLogger
    secret: webhook.WebhookSecret | None
    on_push: Callable[[webhook.Push], str]
    ready_window: float = 300.0
    branch: str | None = None
    prefix: str = ""
    clock: Callable[[], float] = time.monotonic

    def health(self) -> tuple[bool, dict[str, Any]]:
        status = self.loop.status()
        checks = {"loop": status.running, "election": self.election.alive()}
        return all(checks.values()), checks

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        role = self.election.role()
        status = self.loop.status()
        now = self.clock()
        body: dict[str, Any] = {"role": role, "passes": status.passes}
        if status.last_ok_at is not None:
            body["last_success_age_s"] = round(now - status.last_ok_at, 3)
        if status.last_error:
            body["last_error"] = status.last_error
        if status.backing_off:
            body["backing_off"] = list(status.backing_off)
        if not status.running:
            body["reason"] = "the work loop is not running"
            return False, body
        if role == "follower":
            holder = self.election.holder()
            if holder:
                body["leader"] = holder
            return True, body

        def recent(moment: float | None) -> bool:
            return moment is not None and now - moment <= self.ready_window

        in_flight_after_good = status.in_flight_since is not None and status.last_error is None
        if recent(status.last_ok_at) or recent(status.leading_since) or in_flight_after_good:
            return True, body
        body["reason"] = f"no successful pass in the last {self.ready_window:g} s"
        return False, body


def create_app(state: ControllerState) -> Starlette:
    """The ASGI application of the controller."""

    def log(request: Request, status: int, started: float, **fields: Any) -> None:
        state.logger.log(
            "debug" if request.url.path in ("/healthz", "/readyz", "/metrics") else "info",
            "http",
            method=request.method,
            path=request.url.path,
            status=status,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            **fields,
        )

    async def healthz(request: Request) -> Response:
        started = time.perf_counter()
        ok, checks = state.health()
        log(request, 200 if ok else 503, started)
        return JSONResponse(
            {"status": "ok" if ok else "unhealthy", "checks": checks},
            status_code=200 if ok else 503,
        )

    async def readyz(request: Request) -> Response:
        started = time.perf_counter()
        ok, body = state.readiness()
        log(request, 200 if ok else 503, started)
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", **body}, status_code=200 if ok else 503
        )

    async def metrics(request: Request) -> Response:
        started = time.perf_counter()
        state.metrics.leader.set((), 1.0 if state.election.is_leader() else 0.0)
        state.metrics.queue_depth.set((), state.loop.queue.depth())
        state.metrics.queue_delayed.set((), state.loop.queue.delayed())
        text = state.metrics.render()
        log(request, 200, started)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def github(request: Request) -> Response:
        started = time.perf_counter()
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > webhook.MAX_BODY_BYTES:
            reply = webhook.Reply(413, {"error": "the body is too large"}, "too_large")
        else:
            body = bytearray()
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > webhook.MAX_BODY_BYTES:
                    break
            headers = {k.lower(): v for k, v in request.headers.items()}
            # on_push may call the Kubernetes API (a follower forwards): not on the loop
            reply = await asyncio.to_thread(
                webhook.handle,
                state.secret,
                headers,
                bytes(body),
                state.on_push,
                state.branch,
                state.prefix,
            )
        event = request.headers.get(webhook.EVENT_HEADER, "")
        state.metrics.webhooks.inc((event if event in ("push", "ping") else "other", reply.result))
        log(
            request,
            reply.status,
            started,
            event=event or None,
            delivery=request.headers.get(webhook.DELIVERY_HEADER),
            result=reply.result,
        )
        return JSONResponse(reply.body, status_code=reply.status)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/webhook/github", github, methods=["POST"]),
    ]
    return Starlette(routes=routes)


class HttpServer:
    """uvicorn in a background thread on a socket bound before it starts (port 0 works)."""

    def __init__(self, app: Starlette, host: str = "0.0.0.0", port: int = 8080) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as exc:
            self._socket.close()
            raise UsageError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port"
            ) from exc
        self._socket.listen(128)
        self.host = host
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise UsageError(f"the HTTP server on port {self.port} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._socket.close()
