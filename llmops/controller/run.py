"""One controller process: the HTTP endpoints, the election and the work loop, started
and stopped in order; built by ``llmops.cli.controller`` and by tests.

Start: endpoints first (probes answer at once), then the election, then the loop.
Stop (SIGTERM, SIGINT or :meth:`Controller.stop`): the loop starts no new pass and the
pass in flight finishes, then the Lease is released (a follower takes over at once
instead of after the lease duration), then the endpoints close.

A webhook push that reaches a follower (the Service routes to every ready replica) is
passed on to the leader through the Lease (``LeaderElector.nudge``), so a push triggers
a pass whichever replica receives it.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import FrameType

from llmops.controller.events import LEADER_ELECTED, EventRecorder
from llmops.controller.leader import Election, LeaderElector
from llmops.controller.loop import Backoff, Loop
from llmops.controller.metrics import ControllerMetrics
from llmops.controller.server import ControllerState, HttpServer, create_app
from llmops.controller.types import PassFn
from llmops.controller.webhook import Push, WebhookSecret
from llmops.runtime.logs import JsonLogger


@dataclass(frozen=True, slots=True)
class ControllerOptions:
    """How one controller runs."""

    interval: float = 60.0
    host: str = "0.0.0.0"
    port: int = 8080
    environments: frozenset[str] | None = None
    backoff: Backoff = field(default_factory=Backoff)
    #: /readyz fails when the leader's last good pass is older; None: max(300, 3 x interval)
    ready_window: float | None = None
    #: the branch whose pushes trigger a pass; None: the repository's default branch
    branch: str | None = None
    #: where the llmops repository sits inside the git repository ("" for the root)
    prefix: str = ""
    #: how long SIGTERM waits for the pass in flight
    shutdown_timeout: float = 300.0


class Controller:
    """Wires a pass function, an election and the endpoints into one process."""

    def __init__(
        self,
        pass_fn: PassFn,
        election: Election,
        options: ControllerOptions | None = None,
        *,
        secret: WebhookSecret | None = None,
        events: EventRecorder | None = None,
        metrics: ControllerMetrics | None = None,
        logger: JsonLogger | None = None,
    ) -> None:
        self.options = options = options or ControllerOptions()
        self.election = election
        self.metrics = metrics or ControllerMetrics()
        self.logger = logger or JsonLogger()
        self.events = events
        self.loop = Loop(
            pass_fn,
            election,
            interval=options.interval,
            backoff=options.backoff,
            environments=options.environments,
            metrics=self.metrics,
            events=events,
            logger=self.logger,
        )
        if isinstance(election, LeaderElector):
            election.on_change = self._leadership_changed
            election.on_nudge = self._nudged
        self.metrics.leader.set((), 1.0 if election.is_leader() else 0.0)
        window = options.ready_window
        self.state = ControllerState(
            loop=self.loop,
            election=election,
            metrics=self.metrics,
            logger=self.logger,
            secret=secret,
            on_push=self.on_push,
            ready_window=window if window is not None else max(300.0, 3 * options.interval),
            branch=options.branch,
            prefix=options.prefix,
        )
        self.server = HttpServer(create_app(self.state), options.host, options.port)
        self._stop = threading.Event()
        self._stopped = False

    @property
    def url(self) -> str:
        return self.server.url

    # -- wiring --------------------------------------------------------------------------

    def _leadership_changed(self, leading: bool) -> None:
        self.metrics.leader.set((), 1.0 if leading else 0.0)
        self.metrics.leader_transitions.inc(("leader" if leading else "follower",))
        if leading and self.events is not None:
            self.events.emit(LEADER_ELECTED, f"{self.election.identity} became leader")

    def on_push(self, push: Push) -> str:
        """Queue a pass for a push (leader or no election), or hand it to the leader."""
        if self.election.is_leader():
            self.loop.trigger(push.apps, trigger="webhook", commit=push.commit)
            return "queued"
        value = json.dumps(
            {
                "id": push.delivery or uuid.uuid4().hex,
                "apps": None if push.apps is None else sorted(push.apps),
                "commit": push.commit,
            },
            separators=(",", ":"),
        )
        if self.election.nudge(value):
            return "forwarded to the leader"
        return "not forwarded: the leader will see the commit at its next poll"

    def _nudged(self, value: str) -> None:
        try:
            data = json.loads(value)
            apps = data.get("apps")
            commit = data.get("commit")
        except (json.JSONDecodeError, AttributeError):
            apps, commit = None, None
        if not (apps is None or (isinstance(apps, list) and all(isinstance(a, str) for a in apps))):
            apps = None
        self.logger.info("push passed on by a follower", apps=apps or "all", commit=commit)
        self.loop.trigger(apps, trigger="webhook", commit=commit if isinstance(commit, str) else None)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self.server.start()
        self.election.start()
        self.loop.start()
        self.logger.info(
            "controller started",
            identity=self.election.identity,
            election=self.election.role() if self.election.role() == "disabled" else "on",
            url=self.server.url,
            interval_s=self.options.interval,
            environments=sorted(self.options.environments) if self.options.environments else "all",
            webhook="on" if self.state.secret is not None else "off",
        )

    def stop(self) -> None:
        """Finish the pass in flight, release the Lease, close the endpoints."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        started = time.monotonic()
        finished = self.loop.stop(self.options.shutdown_timeout)
        if not finished:
            self.logger.warning(
                "the pass in flight did not finish in time", timeout_s=self.options.shutdown_timeout
            )
        self.election.stop(release=True)
        self.server.stop()
        self.logger.info("controller stopped", seconds=round(time.monotonic() - started, 3))

    def request_stop(self) -> None:
        """Ask :meth:`run_forever` to stop (safe from a signal handler)."""
        self._stop.set()

    def run_forever(self) -> None:
        """Start, serve until SIGTERM/SIGINT (or :meth:`request_stop`), then stop."""

        def handle(signum: int, frame: FrameType | None) -> None:
            self.logger.info("signal received", signal=signal.Signals(signum).name)
            self._stop.set()

        previous = {
            sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
            while not self._stop.wait(0.5):
                if not self.loop.status().running:
                    self.logger.error("the work loop ended unexpectedly")
                    break
        finally:
            try:
                self.stop()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
