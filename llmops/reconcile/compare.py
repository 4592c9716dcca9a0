"""Pure decisions of a pass: which changes of a target's plan to apply, drift, soak, ledger.

Called by ``llmops.ops.reconcile`` between the target's ``plan`` (desired vs live) and
its ``apply``. Nothing here does I/O.

* Apps that should run but could not be prepared (their gate failed, their release is
  marked bad, an error) keep what runs: their changes are dropped from the plan, so a
  bad commit never takes a working app down.
* Drift (``LiveApp.drift``: fields changed by hand) is corrected (the plan re-applies the
  desired state) or only reported, per ``spec.driftPolicy``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from llmops.domain.archive import LedgerEntry
from llmops.domain.deploy import Change, DeployPlan, DesiredApp, LiveApp
from llmops.domain.models.base import parse_duration
from llmops.promote.ledger import entered_at, parse_time, timeline


def without_apps(plan: DeployPlan, apps: Collection[str]) -> DeployPlan:
    """``plan`` with every change of ``apps`` made ``unchanged`` (what runs keeps running)."""
    if not apps:
        return plan
    changes = tuple(
        Change("unchanged", ch.app, ch.object) if ch.app in apps and ch.kind != "unchanged" else ch
        for ch in plan.changes
    )
    return dataclasses.replace(plan, changes=changes)


def drift_only(live: LiveApp | None, desired: DesiredApp | None) -> bool:
    """The app runs the desired state but was changed by hand since."""
    return (
        live is not None
        and desired is not None
        and bool(live.drift)
        and live.release == desired.release
        and live.fingerprint == desired.fingerprint
    )


def apply_drift_policy(
    plan: DeployPlan,
    live: Mapping[str, LiveApp],
    desired: Mapping[str, DesiredApp],
    policy: str,
) -> tuple[DeployPlan, tuple[str, ...], tuple[str, ...]]:
    """``(plan, corrected, reported)``: with policy ``correct`` every drifted app gets an
    ``update`` (added when the target's plan had none); with ``report`` the changes that
    would only undo drift are dropped."""
    drifted = sorted(app for app in desired if drift_only(live.get(app), desired[app]))
    if not drifted:
        return plan, (), ()
    if policy == "report":
        return without_apps(plan, drifted), (), tuple(drifted)
    changes = list(plan.changes)
    for app in drifted:
        mine = [i for i, ch in enumerate(changes) if ch.app == app]
        if any(changes[i].kind != "unchanged" for i in mine):
            continue
        lines = tuple(f"~ {line}" for line in live[app].drift)
        if mine:
            for i in mine:
                changes[i] = Change("update", app, changes[i].object, lines)
        else:
            changes.append(Change("update", app, app, lines))
    return dataclasses.replace(plan, changes=tuple(changes)), tuple(drifted), ()


def changed_apps(plan: DeployPlan) -> tuple[str, ...]:
    return tuple(sorted({ch.app for ch in plan.changes if ch.kind != "unchanged"}))


def ledger_behind(entries: Sequence[LedgerEntry], app: str, env: str, release: str) -> bool:
    """The ledger does not say ``release`` runs in ``env`` (a crash between apply and the
    ledger write, or a deploy by hand): the pass records it."""
    changes = timeline(entries, app, env)
    return not changes or changes[-1].release != release


def soak_ready_at(
    entries: Sequence[LedgerEntry], app: str, source_env: str, release: str, soak: str
) -> datetime | None:
    """When ``release`` will have soaked ``soak`` in ``source_env``, or None if unknown."""
    since = entered_at(entries, app, source_env, release)
    seconds = parse_duration(soak) or 0.0
    if since is None or seconds <= 0:
        return None
    return parse_time(since) + timedelta(seconds=seconds)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
