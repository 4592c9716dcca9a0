"""Test helpers: controllers with a recording pass function, on a real HTTP port, electing
on the Kubernetes API test server (or without election)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from leasekit import Partition

from llmops.adapters.kubelease import KubeEvents, KubeLeases, api_client
from llmops.controller.events import EventRecorder, Regarding
from llmops.controller.leader import Election, ElectionConfig, LeaderElector, NoElection
from llmops.controller.loop import Backoff
from llmops.controller.run import Controller, ControllerOptions
from llmops.controller.types import EnvResult, PassOutcome, PassRequest
from llmops.controller.webhook import WebhookSecret
from llmops.runtime.logs import JsonLogger

NS = "llm-test"
LEASE = "llmops-controller"
SECRET = b"it's a secret to everybody"

#: one client for every request of the tests (building one costs a TLS context each time)
HTTP = httpx.Client(timeout=5, trust_env=False)


def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.01)


@dataclass
class PassLog:
    """Every pass any controller ran: (identity, start, end, request), monotonic times."""

    entries: list[tuple[str, float, float, PassRequest]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fn(self, identity: str, seconds: float = 0.02) -> Callable[[PassRequest], PassOutcome]:
        def run(request: PassRequest) -> PassOutcome:
            start = time.monotonic()
            time.sleep(seconds)
            with self.lock:
                self.entries.append((identity, start, time.monotonic(), request))
            return PassOutcome(environments=(EnvResult("dev", True),))

        return run

    def by(self, identity: str) -> list[tuple[float, float, PassRequest]]:
        with self.lock:
            return [(s, e, r) for i, s, e, r in self.entries if i == identity]

    def snapshot(self) -> list[tuple[str, float, float, PassRequest]]:
        with self.lock:
            return sorted(self.entries, key=lambda e: e[1])


@dataclass
class Running:
    controller: Controller
    partition: Partition | None
    log: io.StringIO

    @property
    def url(self) -> str:
        return self.controller.url

    def get(self, path: str) -> httpx.Response:
        return HTTP.get(self.url + path)


def start_controller(
    pass_fn: Callable[[PassRequest], PassOutcome],
    *,
    kube_server: Any | None = None,
    identity: str = "a",
    interval: float = 0.05,
    lease_duration: int = 1,
    renew_deadline: float = 0.6,
    retry_period: float = 0.15,
    secret: bytes | None = SECRET,
    backoff: Backoff | None = None,
    ready_window: float | None = None,
) -> Running:
    log = io.StringIO()
    logger = JsonLogger(log, level="debug")
    partition: Partition | None = None
    events: EventRecorder | None = None
    election: Election
    if kube_server is None:
        election = NoElection()
    else:
        client = api_client(kube_server.kubeconfig)
        partition = Partition(KubeLeases(client, NS, LEASE, timeout=(0.5, 0.5)))
        election = LeaderElector(
            partition,
            ElectionConfig(identity, lease_duration, renew_deadline, retry_period),
            logger=logger,
        )
        events = EventRecorder(KubeEvents(client).create, Regarding(NS, name=LEASE), identity, logger)
    controller = Controller(
        pass_fn,
        election,
        ControllerOptions(
            interval=interval,
            host="127.0.0.1",
            port=0,
            backoff=backoff or Backoff(base=0.05, cap=1.0),
            ready_window=ready_window,
            shutdown_timeout=10,
        ),
        secret=WebhookSecret(secret) if secret else None,
        events=events,
        logger=logger,
    )
    controller.start()
    return Running(controller, partition, log)
