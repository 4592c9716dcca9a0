"""What the controller asks of a reconcile pass and what a pass reports back; used by
``llmops.controller.loop`` (which builds requests and reads outcomes), by
``llmops.cli.controller`` (which adapts the reconciler to :data:`PassFn`) and by tests.

The controller knows nothing of how a pass works: it calls one injected function,
``PassFn = Callable[[PassRequest], PassOutcome]``. Failures are data in the outcome; a
pass function raises only when the pass as a whole could not run (the repository could
not be fetched, the manifests do not load), and the loop then retries the whole pass
with backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

#: what made the loop run a pass
Trigger = Literal["poll", "webhook", "retry", "startup"]


def _never() -> bool:
    return False


@dataclass(frozen=True, slots=True)
class PassRequest:
    """Which apps and environments one pass reconciles.

    ``apps=None`` means every app of the repository except those in ``exclude`` (apps
    backing off after failures whose retry is not due yet). ``environments=None`` means
    every environment. ``should_stop`` turns true when the pass must end early (the lease
    was lost or the process is shutting down); a pass function checks it between steps.
    """

    apps: frozenset[str] | None = None
    environments: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()
    trigger: Trigger = "poll"
    #: the commit a webhook push announced, when there is one (the pass fetches anyway)
    commit: str | None = None
    should_stop: Callable[[], bool] = field(default=_never, compare=False, repr=False)

    def wants(self, app: str) -> bool:
        """True when ``app`` is in this pass."""
        if app in self.exclude:
            return False
        return self.apps is None or app in self.apps


@dataclass(frozen=True, slots=True)
class EnvResult:
    """One environment's result in a pass: ``ok`` when it converged (failed apps aside)."""

    env: str
    ok: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class AppFailure:
    """One app failed in this pass; it backs off, the other apps carry on.

    ``retry_after`` is a lower bound on the next attempt (a ``Retryable`` error's delay).
    """

    app: str
    env: str | None
    message: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Promotion:
    """A release moved (or was proposed, by pull request) into an environment."""

    app: str
    env: str
    release: str
    from_env: str | None = None
    #: the pull request URL or the commit that carries the new pin
    via: str | None = None


@dataclass(frozen=True, slots=True)
class Rollback:
    """An environment went back to an earlier release after a failed rollout or verify."""

    app: str
    env: str
    release: str
    bad_release: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class GateFailure:
    """A release did not pass the gate into an environment."""

    app: str
    env: str
    release: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PassOutcome:
    """What one pass did; every field is data, nothing is raised for a failed app."""

    environments: tuple[EnvResult, ...] = ()
    app_failures: tuple[AppFailure, ...] = ()
    promotions: tuple[Promotion, ...] = ()
    rollbacks: tuple[Rollback, ...] = ()
    gate_failures: tuple[GateFailure, ...] = ()
    #: the commit the pass reconciled, when known
    commit: str | None = None

    @property
    def failed_apps(self) -> frozenset[str]:
        return frozenset(f.app for f in self.app_failures)

    @property
    def ok(self) -> bool:
        """Every environment converged and no app failed."""
        return not self.app_failures and all(e.ok for e in self.environments)


#: the one function the controller calls; raises only when the whole pass could not run
PassFn = Callable[[PassRequest], PassOutcome]
