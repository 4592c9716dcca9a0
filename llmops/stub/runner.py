"""Run the stub model in-process on 127.0.0.1; used by tests, the eval engine and the CLI.

:class:`StubServer` serves ``llmops.stub.server`` with uvicorn in a background thread on
a port it binds itself (a free one by default), returns once the server accepts
connections, and stops on ``stop()`` or when its ``with`` block ends::

    with StubServer(StubConfig(faults={"429": 0.2})) as stub:
        client.complete(ChatRequest(base_url=stub.url, model="stub", ...))
        stub.stats()["faults"]
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn

from llmops.adapters.asgi_server import bind
from llmops.domain.errors import ExternalError
from llmops.stub.config import FaultKind, StubConfig
from llmops.stub.server import StubState, create_app


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (0 picks a free port), inheritable;
    ``ExternalError`` if taken."""
    sock = bind(host, port)
    sock.set_inheritable(True)
    return sock


class StubServer:
    """The stub model on a local port, served from a daemon thread."""

    def __init__(
        self,
        config: StubConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 10.0,
    ) -> None:
        self.config = config if config is not None else StubConfig()
        self.state = StubState(self.config)
        self.host = host
        self._requested_port = port
        self._startup_timeout = startup_timeout
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def __repr__(self) -> str:
        return f"StubServer(url={self.url!r})" if self.port else "StubServer(not started)"

    @property
    def root_url(self) -> str:
        """``http://host:port``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL, ``http://host:port/v1`` (a model's ``baseUrl``)."""
        return f"{self.root_url}/v1"

    def start(self) -> Self:
        """Bind, serve in a thread, and wait until the server accepts connections."""
        if self._thread is not None:
            return self
        self._sock = bind_socket(self.host, self._requested_port)
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.config, self.state),
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name=f"llmops-stub-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ExternalError(f"the stub model did not start on {self.root_url}")
            time.sleep(0.01)
        with socket.create_connection((self.host, self.port), timeout=self._startup_timeout):
            pass
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Shut the server down and wait for its thread (idempotent)."""
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def stats(self) -> dict[str, Any]:
        """What ``GET /stub/stats`` answers, read in-process."""
        return self.state.snapshot()

    def script_faults(self, *faults: FaultKind | None) -> None:
        """What ``POST /stub/faults`` does: the next requests get these faults, in order."""
        self.state.script_faults(faults)

    def reset(self) -> None:
        """What ``POST /stub/reset`` does: zero the stats, restart the fault dice."""
        self.state.reset()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
