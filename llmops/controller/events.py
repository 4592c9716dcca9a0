"""Kubernetes Events for what a pass did; called by ``llmops.controller.loop`` after each
pass, writing through ``llmops.adapters.kubelease.KubeEvents``.

Events go to the controller's own namespace, about its Lease (the one object the
controller owns there), so ``kubectl -n <ns> get events`` tells the story of promotions,
rollbacks and failures without the controller needing rights on Events elsewhere. A
failure is reported when it starts or its message changes, not on every retry. Writing
an Event never fails a pass: an error is logged once and the pass goes on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from llmops.adapters.kubelease import EventSpec
from llmops.controller.types import PassOutcome
from llmops.domain.errors import LlmopsError
from llmops.runtime.logs import JsonLogger

#: reasons, as ``kubectl get events`` shows them
PROMOTED = "Promoted"
ROLLED_BACK = "RolledBack"
GATE_FAILED = "GateFailed"
RECONCILE_FAILED = "ReconcileFailed"
RECOVERED = "Recovered"
LEADER_ELECTED = "LeaderElected"


@dataclass(frozen=True, slots=True)
class Regarding:
    """The object the events are about, and where they are written."""

    namespace: str
    kind: str = "Lease"
    name: str = "llmops-controller"
    api_version: str = "coordination.k8s.io/v1"


class EventRecorder:
    """Turns pass outcomes into Events; ``create`` is ``KubeEvents.create`` or a fake."""

    def __init__(
        self,
        create: Callable[[EventSpec], None],
        regarding: Regarding,
        host: str = "",
        logger: JsonLogger | None = None,
    ) -> None:
        self._create = create
        self.regarding = regarding
        self.host = host
        self.logger = logger or JsonLogger()
        self._failing: dict[tuple[str, str | None], str] = {}
        self._lock = threading.Lock()
        self._last_error: str | None = None

    def emit(self, reason: str, message: str, warning: bool = False) -> None:
        spec = EventSpec(
            namespace=self.regarding.namespace,
            reason=reason,
            message=message,
            type="Warning" if warning else "Normal",
            regarding_kind=self.regarding.kind,
            regarding_name=self.regarding.name,
            regarding_api_version=self.regarding.api_version,
            host=self.host,
        )
        try:
            self._create(spec)
            self._last_error = None
        except LlmopsError as exc:
            if exc.message != self._last_error:
                self.logger.warning("could not write an event", reason=reason, error=exc.message)
            self._last_error = exc.message

    def record(self, outcome: PassOutcome, wanted: Callable[[str], bool]) -> None:
        """Events for ``outcome``; ``wanted(app)`` says which apps the pass covered (to
        notice an app that stopped failing)."""
        for p in outcome.promotions:
            source = f" from {p.from_env}" if p.from_env else ""
            via = f" ({p.via})" if p.via else ""
            self.emit(PROMOTED, f"{p.app}: {p.release} promoted{source} to {p.env}{via}")
        for r in outcome.rollbacks:
            bad = f" from {r.bad_release}" if r.bad_release else ""
            why = f": {r.reason}" if r.reason else ""
            self.emit(
                ROLLED_BACK, f"{r.app} in {r.env} rolled back{bad} to {r.release}{why}", True
            )
        for g in outcome.gate_failures:
            why = f": {g.reason}" if g.reason else ""
            self.emit(GATE_FAILED, f"{g.app}: {g.release} failed the gate into {g.env}{why}", True)
        with self._lock:
            current = {(f.app, f.env): f.message for f in outcome.app_failures}
            new = {k: m for k, m in current.items() if self._failing.get(k) != m}
            recovered = [
                k for k in self._failing if k not in current and wanted(k[0])
            ]
            for key in recovered:
                del self._failing[key]
            self._failing.update(current)
        for (app, env), message in sorted(new.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            where = f" in {env}" if env else ""
            self.emit(RECONCILE_FAILED, f"{app}{where}: {message}", True)
        for app, env in sorted(recovered, key=lambda k: (k[0], k[1] or "")):
            where = f" in {env}" if env else ""
            self.emit(RECOVERED, f"{app}{where} reconciles again")
