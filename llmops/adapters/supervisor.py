"""``python -m llmops.adapters.supervisor``: the long-lived process of one app of one
environment in the ``local`` deploy target.

Started detached (its own session) by ``llmops.deploy.local`` and outliving the CLI, it

- listens on the app's stable port and forwards every HTTP request to the active colour's
  backend (``llmops serve <app> --bundle … --port <colour port>``);
- starts, restarts and stops the backends: a backend of the active colour that exits is
  restarted with exponential backoff (0.5 s doubling to 30 s; reset after 30 s up);
  others are left exited for the deployer to see;
- takes commands on a unix control socket (JSON over HTTP, mode 0600): ``GET /status``,
  ``PUT /backends/<colour>`` (start), ``PUT /active`` (switch), ``DELETE
  /backends/<colour>`` (drain, then stop), ``POST /shutdown``;
- writes what runs to ``<dir>/state.json`` atomically after every change, with PIDs,
  ports, releases and fingerprints but never the backends' environment values (secrets
  reach the backends only through this process's memory);
- on SIGTERM or SIGINT stops answering, stops every backend gracefully (SIGTERM, their
  in-flight requests finish) and exits 0.

Why an HTTP proxy and not a byte-level TCP one: the switch happens per *request*, so a
client's keep-alive connection moves to the new colour with its next request and no
connection is cut when the old colour stops; the proxy also counts requests in flight
per colour, so the old colour is stopped only once it is idle. A request that finds the
active backend restarting (after a crash) waits up to ``--connect-wait`` seconds for it
instead of failing, since a refused connection never reached the backend. A GET, HEAD
or OPTIONS whose connection closes before its answer is sent again at most twice: at
once while its backend runs, and after the restart if its backend exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import web

from llmops.adapters.httpproxy import (
    COLOUR_HEADER,
    DISCONNECTS,
    IDEMPOTENT,
    MAX_BODY,
    BadCommand,
    StablePort,
    TooLarge,
    arguments,
    close_control,
    command_errors,
    forward_headers,
    listen,
    log,
    new_session,
    read_body,
    stable_port_options,
    stream_answer,
    upstream_request,
)
from llmops.adapters.httpproxy import now as _now
from llmops.adapters.process import orphan_safe, port_free, rotate_if_large, write_json_atomic

__all__ = ["COLOUR_HEADER", "MAX_BODY", "forward_headers", "log"]

STATE_FILE = "state.json"
STATE_VERSION = 1
COLOURS = ("blue", "green")
#: answers up to this size with a Content-Length are read whole and sent in one write;
#: larger or chunked ones (server-sent events) are streamed as they come
_WHOLE = 1024 * 1024
#: a backend's log is rotated (to ``<colour>.log.1``) past this size, checked every 30 s
LOG_MAX = 16 * 1024 * 1024
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
#: a backend up this long counts as healthy again: the next crash restarts fast
STABLE_AFTER = 30.0
#: how long a request whose connection closed twice waits to see its backend exit
EXIT_WAIT = 1.0
BackendStatus = Literal["running", "restarting", "exited", "stopping", "stopped"]

_log = logging.getLogger("llmops.supervisor")


def restart_delay(failures: int) -> float:
    """Seconds to wait before restarting after the ``failures``-th crash in a row."""
    return float(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, failures - 1)))


_BadCommand = BadCommand
_TooLarge = TooLarge
_IDEMPOTENT = IDEMPOTENT


@dataclass(eq=False)
class Backend:
    """One colour's ``llmops serve`` process, as the supervisor runs it."""

    colour: str
    port: int
    argv: list[str]
    env: dict[str, str] = field(repr=False)
    cwd: str
    release: str
    fingerprint: str
    bundle: str
    log: Path
    proc: asyncio.subprocess.Process | None = None
    status: BackendStatus = "running"
    restarts: int = 0
    failures: int = 0
    exit_code: int | None = None
    started: str = ""
    started_mono: float = 0.0
    inflight: int = 0
    retiring: bool = False
    session: aiohttp.ClientSession | None = None
    watcher: asyncio.Task[None] | None = None

    def public(self) -> dict[str, Any]:
        """What the state file and ``/status`` show: no environment values."""
        return {
            "port": self.port,
            "pid": self.proc.pid if self.proc is not None else None,
            "release": self.release,
            "fingerprint": self.fingerprint,
            "bundle": self.bundle,
            "status": self.status,
            "restarts": self.restarts,
            # the code of the last exit (None until the first): a restart keeps it
            "exit_code": self.exit_code,
            "started": self.started,
            "inflight": self.inflight,
            "log": str(self.log),
            "argv": self.argv,
            "env_names": sorted(self.env),
        }


class Supervisor(StablePort):
    """The state and the three faces (proxy, control, child processes) of one app."""

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
        super().__init__(directory, app, env, port, control, host=host, connect_wait=connect_wait)
        self.backends: dict[str, Backend] = {}
        self.active: str | None = None
        self.lock = asyncio.Lock()

    # --- state ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "app": self.app,
            "env": self.env,
            "supervisor": self.process_info(),
            "active": self.active,
            "stopped": self.closing,
            "backends": {colour: b.public() for colour, b in sorted(self.backends.items())},
        }

    def save(self) -> None:
        write_json_atomic(self.dir / STATE_FILE, self.snapshot())

    # --- processes ------------------------------------------------------------------------
    async def _spawn(self, backend: Backend) -> None:
        backend.log.parent.mkdir(parents=True, exist_ok=True)
        with backend.log.open("ab") as out:
            backend.proc = await asyncio.create_subprocess_exec(
                *orphan_safe(backend.argv),
                env=backend.env,
                cwd=backend.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        backend.status = "running"
        backend.started = _now()
        backend.started_mono = time.monotonic()
        backend.watcher = asyncio.create_task(self._watch(backend, backend.proc))
        log(
            "backend started",
            colour=backend.colour,
            pid=backend.proc.pid,
            port=backend.port,
            release=backend.release,
        )
        self.save()

    async def _watch(self, backend: Backend, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if backend.proc is not proc:
            return
        backend.proc = None
        backend.exit_code = code
        await self._drop_session(backend)
        if backend.retiring or self.closing:
            return
        if self.active != backend.colour or self.backends.get(backend.colour) is not backend:
            backend.status = "exited"
            log("backend exited", colour=backend.colour, code=code, pid=proc.pid)
            self.save()
            return
        uptime = time.monotonic() - backend.started_mono
        backend.failures = 1 if uptime >= STABLE_AFTER else backend.failures + 1
        delay = restart_delay(backend.failures)
        backend.status = "restarting"
        log(
            "backend exited; restarting",
            colour=backend.colour,
            code=code,
            pid=proc.pid,
            uptime=round(uptime, 3),
            delay=delay,
        )
        self.save()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_requested.wait(), delay)
        async with self.lock:
            if (
                self.closing
                or backend.retiring
                or backend.proc is not None
                or self.backends.get(backend.colour) is not backend
            ):
                return
            backend.restarts += 1
            try:
                await self._spawn(backend)
            except OSError as exc:
                backend.status = "exited"
                log("backend restart failed", colour=backend.colour, error=str(exc))
                self.save()

    async def _stop(self, backend: Backend, *, drain: float, timeout: float) -> None:
        """Drain ``backend`` (no new requests reach it; wait for those in flight), then
        SIGTERM it and SIGKILL after ``timeout`` seconds."""
        backend.retiring = True
        backend.status = "stopping"
        self.save()
        deadline = time.monotonic() + drain
        while backend.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        proc = backend.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            backend.exit_code = proc.returncode
        backend.proc = None
        watcher = backend.watcher
        if watcher is not None and watcher is not asyncio.current_task():
            # it may be sleeping before a restart or waiting for the lock this caller holds
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await self._drop_session(backend)
        backend.status = "stopped"
        log("backend stopped", colour=backend.colour, release=backend.release)

    async def _drop_session(self, backend: Backend) -> None:
        session, backend.session = backend.session, None
        if session is not None:
            await session.close()

    def _session(self, backend: Backend) -> aiohttp.ClientSession:
        if backend.session is None or backend.session.closed:
            backend.session = new_session()
        return backend.session

    # --- control --------------------------------------------------------------------------
    async def start_backend(self, colour: str, spec: dict[str, Any]) -> Backend:
        if colour not in COLOURS:
            raise _BadCommand(404, f"no colour {colour!r} (blue or green)")
        backend = _backend_from(colour, spec, self.dir)
        async with self.lock:
            if self.closing:
                raise _BadCommand(409, "the supervisor is shutting down")
            if colour == self.active:
                raise _BadCommand(409, f"{colour} is the active colour; start the other one")
            old = self.backends.pop(colour, None)
            if old is not None:
                await self._stop(old, drain=0.0, timeout=10.0)
            if not port_free(backend.port, self.host):
                self.save()
                raise _BadCommand(409, f"port {backend.port} is in use by another process; free it")
            if backend.log.exists():
                with contextlib.suppress(OSError):
                    backend.log.replace(backend.log.with_name(backend.log.name + ".1"))
            self.backends[colour] = backend
            try:
                await self._spawn(backend)
            except OSError as exc:
                del self.backends[colour]
                self.save()
                raise _BadCommand(500, f"cannot start the {colour} backend: {exc}") from exc
            return backend

    async def switch(self, colour: str) -> None:
        async with self.lock:
            backend = self.backends.get(colour)
            if backend is None or backend.proc is None or backend.retiring:
                raise _BadCommand(409, f"no running {colour} backend to switch to")
            previous, self.active = self.active, colour
            log("switched", active=colour, previous=previous, release=backend.release)
            self.save()

    async def stop_backend(self, colour: str, *, drain: float, timeout: float) -> None:
        async with self.lock:
            if colour == self.active:
                raise _BadCommand(409, f"{colour} is the active colour; switch away first")
            backend = self.backends.get(colour)
            if backend is None:
                return
            await self._stop(backend, drain=drain, timeout=timeout)
            if self.backends.get(colour) is backend:
                del self.backends[colour]
            self.save()

    def control_app(self) -> web.Application:
        async def status(request: web.Request) -> web.Response:
            return web.json_response(self.snapshot())

        async def start(request: web.Request) -> web.Response:
            spec = await _json_body(request)
            await self.start_backend(request.match_info["colour"], spec)
            return web.json_response(self.snapshot())

        async def active(request: web.Request) -> web.Response:
            body = await _json_body(request)
            await self.switch(str(body.get("colour")))
            return web.json_response(self.snapshot())

        async def stop(request: web.Request) -> web.Response:
            drain = float(request.query.get("drain", "30"))
            timeout = float(request.query.get("timeout", "30"))
            await self.stop_backend(request.match_info["colour"], drain=drain, timeout=timeout)
            return web.json_response(self.snapshot())

        async def shutdown(request: web.Request) -> web.Response:
            self.stop_requested.set()
            return web.json_response({"stopping": True}, status=202)

        app = web.Application(middlewares=[command_errors])
        app.router.add_get("/status", status)
        app.router.add_put("/backends/{colour}", start)
        app.router.add_delete("/backends/{colour}", stop)
        app.router.add_put("/active", active)
        app.router.add_post("/shutdown", shutdown)
        return app

    # --- proxy ----------------------------------------------------------------------------
    def _serving(self) -> Backend | None:
        if self.closing or self.active is None:
            return None
        return self.backends.get(self.active)

    async def proxy(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            body = await _read_body(request)
        except _TooLarge:
            return _problem(413, "too_large", f"request bodies are limited to {MAX_BODY} bytes")
        deadline = time.monotonic() + self.connect_wait
        # an idempotent request cut off by a closed connection is sent again at most twice:
        # once while its process still runs (a keep-alive connection it had closed), once
        # after that process exited (a crash, or a connection accepted by a dying process)
        stale_retried = death_retried = False
        while True:
            backend = self._serving()
            if backend is None:
                return _problem(503, "unavailable", f"no release of {self.app} is active here")
            proc = backend.proc
            if proc is None or proc.returncode is not None:
                if time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                    continue
                return _problem(
                    503, "unavailable", f"the {backend.colour} backend of {self.app} is restarting"
                )
            session = self._session(backend)
            backend.inflight += 1
            try:
                return await self._forward(request, body, backend, session)
            except aiohttp.ClientConnectorError as exc:
                if time.monotonic() >= deadline:
                    return _problem(502, "bad_gateway", f"cannot reach the backend: {exc}")
            except DISCONNECTS as exc:
                if request.method in _IDEMPOTENT:
                    if not stale_retried and proc.returncode is None:
                        stale_retried = True
                        continue
                    if not death_retried and await _exits(proc, deadline):
                        death_retried = True
                        continue
                return _problem(
                    502,
                    "bad_gateway",
                    f"the {backend.colour} backend closed the connection: {exc}",
                )
            except aiohttp.ClientError as exc:
                if not _never_sent(exc, session) or time.monotonic() >= deadline:
                    return _problem(
                        502, "bad_gateway", f"the {backend.colour} backend failed: {exc}"
                    )
            finally:
                backend.inflight -= 1
            await asyncio.sleep(0.05)

    async def _forward(
        self,
        request: web.BaseRequest,
        body: bytes,
        backend: Backend,
        session: aiohttp.ClientSession,
    ) -> web.StreamResponse:
        async with upstream_request(session, request, self.host, backend.port, body) as upstream:
            chunked = "chunked" in upstream.headers.get("Transfer-Encoding", "").lower()
            length = upstream.content_length
            if length is not None and length <= _WHOLE and not chunked and request.method != "HEAD":
                # the common case, a JSON answer: one read, one write
                try:
                    data = await upstream.read()
                except aiohttp.ClientError as exc:
                    raise aiohttp.ServerDisconnectedError(f"the answer broke off: {exc}") from exc
                whole = web.Response(status=upstream.status, reason=upstream.reason, body=data)
                for name, value in forward_headers(upstream.headers):
                    whole.headers.add(name, value)
                whole.headers[COLOUR_HEADER] = backend.colour
                whole.headers.setdefault("Server", "llmops")
                return whole
            return await stream_answer(
                request, upstream, backend.colour, who="backend", server="llmops"
            )

    # --- life -----------------------------------------------------------------------------
    async def _rotate_logs(self, every: float = 30.0) -> None:
        while True:
            await asyncio.sleep(every)
            for backend in list(self.backends.values()):
                if rotate_if_large(backend.log, LOG_MAX):
                    log("log rotated", colour=backend.colour, log=str(backend.log))

    async def run(self) -> int:
        runners = await listen(
            self.proxy, self.control_app(), self.host, self.port, self.control, self.stop_requested
        )
        if runners is None:
            return 3
        proxy_runner, control_runner = runners
        self.save()
        log("supervising", app=self.app, env=self.env, url=f"http://{self.host}:{self.port}")
        rotation = asyncio.create_task(self._rotate_logs())
        await self.stop_requested.wait()
        log("stopping")
        rotation.cancel()
        async with self.lock:
            self.closing = True
            self.save()
            await asyncio.gather(
                *(self._stop(b, drain=10.0, timeout=15.0) for b in self.backends.values())
            )
            self.save()
        await proxy_runner.cleanup()
        await close_control(control_runner, self.control)
        return 0


def _never_sent(exc: aiohttp.ClientError, session: aiohttp.ClientSession) -> bool:
    """Whether ``exc`` says the request's connection was closed before anything was sent
    on it: the backend exited meanwhile and its session (pooled connections and all) was
    dropped. Such a request is sent again, whatever its method."""
    return type(exc) is aiohttp.ClientConnectionError and session.closed


async def _exits(proc: asyncio.subprocess.Process, deadline: float) -> bool:
    """Whether ``proc`` has exited or exits within a second (or by ``deadline``)."""
    if proc.returncode is not None:
        return True
    wait = min(EXIT_WAIT, deadline - time.monotonic())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(proc.wait()), max(0.0, wait))
    return proc.returncode is not None


def _backend_from(colour: str, spec: dict[str, Any], directory: Path) -> Backend:
    port = spec.get("port")
    argv = spec.get("argv")
    env = spec.get("env", {})
    if not isinstance(port, int) or not 0 < port < 65536:
        raise _BadCommand(400, "port must be a TCP port number")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise _BadCommand(400, "argv must be a non-empty list of strings")
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise _BadCommand(400, "env must map names to strings")
    return Backend(
        colour=colour,
        port=port,
        argv=argv,
        env=env,
        cwd=str(spec.get("cwd") or directory),
        release=str(spec.get("release", "")),
        fingerprint=str(spec.get("fingerprint", "")),
        bundle=str(spec.get("bundle", "")),
        log=directory / "logs" / f"{colour}.log",
    )


async def _json_body(request: web.Request) -> dict[str, Any]:
    document = await request.json()
    if not isinstance(document, dict):
        raise _BadCommand(400, "the body must be a JSON object")
    return document


_read_body = read_body


def _problem(status: int, kind: str, message: str) -> web.Response:
    """An error answer in the runtime's shape: ``{"error": {"type", "message"}}``."""
    body = {"error": {"type": kind, "message": message}}
    return web.json_response(body, status=status, headers={"Server": "llmops"})


def main(argv: list[str] | None = None) -> int:
    parser = arguments(
        "python -m llmops.adapters.supervisor",
        "Supervise one app of a local llmops environment (started by llmops apply).",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    supervisor = Supervisor(**stable_port_options(args))
    try:
        import uvloop  # uvicorn[standard] brings it: a faster loop for the proxy
    except ImportError:  # pragma: no cover - uvloop is a dependency through uvicorn
        return asyncio.run(supervisor.run())
    return uvloop.run(supervisor.run())


if __name__ == "__main__":
    sys.exit(main())
