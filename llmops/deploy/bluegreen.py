"""What the blue/green targets share: the desired apps' checks, a plan's diff lines for an
app that runs, the readiness probe of a new colour, and starting an app's stable-port proxy
process (the local target's supervisor, the docker target's proxy) and waiting until it
answers on its control socket."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from llmops.adapters import process
from llmops.domain.deploy import DeployPlan, DesiredApp, LiveApp
from llmops.domain.errors import UsageError

#: lines of a proxy's log shown when it fails to start
LOG_TAIL_LINES = 15


class Failed(Exception):
    """One app's deploy failed; ``reason`` says why (one line), ``detail`` adds a log tail."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def check_desired(env: str, desired: Sequence[DesiredApp]) -> list[str]:
    """The desired apps' names; ``UsageError`` when one is twice or of another environment."""
    names = [d.app for d in desired]
    if len(set(names)) != len(names):
        raise UsageError(f"an app is desired twice in environment {env}: {names}")
    for d in desired:
        if d.env != env:
            raise UsageError(f"app {d.app} is desired in {d.env}, not in {env}")
    return names


def update_lines(current: LiveApp, d: DesiredApp, endpoint: str, settings: str) -> list[str]:
    """A plan's diff lines for an app that runs: ``-``/``+`` values, ``~`` settings (which
    ``settings`` names), ``!`` drift and not ready; none when it is unchanged."""
    lines: list[str] = []
    if current.release != d.release:
        lines += [f"- release: {current.release}", f"+ release: {d.release}"]
    elif current.fingerprint != d.fingerprint:
        lines.append(
            f"~ settings: fingerprint {current.fingerprint} -> {d.fingerprint} ({settings})"
        )
    if current.endpoint != endpoint:
        lines += [f"- endpoint: {current.endpoint}", f"+ endpoint: {endpoint}"]
    lines += [f"! drift: {item}" for item in current.drift]
    if not current.ready and not current.drift:
        lines.append(f"! not ready: {endpoint}/healthz does not answer 200")
    return lines


def probe_ready(base: str, desired: DesiredApp, other: str) -> tuple[str, bool]:
    """Whether ``base`` answers ``/healthz`` and its ``/readyz`` says this release is
    ready, and if not why (``other`` names what else might answer there)."""
    health, why = process.probe(base + "/healthz", timeout=2.0)
    if health is None or health.status != 200:
        return why or f"GET {base}/healthz answered {health.status if health else '?'}", False
    ready, why = process.probe(base + "/readyz", timeout=5.0)
    return readiness(ready, why, desired, other)


def readiness(
    answer: process.HttpAnswer | None, why: str, desired: DesiredApp, other: str
) -> tuple[str, bool]:
    """Whether a ``/readyz`` answer says this release is ready, and if not why."""
    if answer is None:
        return why, False
    try:
        document = answer.json()
        entry = (document.get("apps") or {}).get(desired.app) or {}
    except (ValueError, AttributeError):
        return f"/readyz answered {answer.status} with no JSON", False
    release = entry.get("release")
    if release is not None and release != desired.release:
        return f"/readyz reports release {release}, not {desired.release} ({other}?)", False
    if answer.status != 200:
        return f"/readyz answered {answer.status}: {entry.get('reason') or 'not ready'}", False
    if release is None:
        return f"/readyz does not list app {desired.app}", False
    return "", True


def proxy_argv(
    python: str,
    module: str,
    directory: Path,
    app: str,
    env: str,
    stable: int,
    host: str,
    connect_wait: float,
) -> list[str]:
    """The command line of an app's stable-port proxy (``python -m module ...``)."""
    return [
        python,
        "-m",
        module,
        "--dir",
        str(directory),
        "--app",
        app,
        "--env",
        env,
        "--port",
        str(stable),
        "--host",
        host,
        "--control",
        str(process.socket_path(directory)),
        "--connect-wait",
        f"{connect_wait:g}",
    ]


def start_proxy(
    argv: Sequence[str],
    environ: Mapping[str, str],
    pass_through: Sequence[str],
    directory: Path,
    log: Path,
    *,
    what: str,
    app: str,
    stable: int,
    timeout: float,
    markers: Callable[[Path], tuple[str, ...]],
) -> process.ControlClient:
    """Start ``argv`` detached and wait until it answers on its control socket with its
    own PID under ``what`` (``supervisor`` or ``proxy``); ``Failed`` with its log tail
    when it exits or does not answer within ``timeout`` (5 to 30 seconds)."""
    sock = process.socket_path(directory)
    base_env = {name: environ[name] for name in pass_through if name in environ}
    pid = process.spawn_detached(list(argv), env=base_env, cwd=directory, log=log)
    control = process.ControlClient(sock)
    deadline = time.monotonic() + min(max(timeout, 5.0), 30.0)
    while True:
        if not process.pid_alive(pid):
            raise Failed(
                f"the {what} of {app} exited at start (port {stable})",
                process.log_tail(log, LOG_TAIL_LINES),
            )
        if control.answers(timeout=1.0):
            _, current = control.request("GET", "/status")
            if (current.get(what) or {}).get("pid") == pid:
                return control
        if time.monotonic() > deadline:
            process.terminate(pid, markers(directory), timeout=5.0)
            raise Failed(
                f"the {what} of {app} did not answer on {sock}",
                process.log_tail(log, LOG_TAIL_LINES),
            )
        time.sleep(0.05)


def check_plan(plan: DeployPlan, env: str) -> dict[str, DesiredApp]:
    """The plan's desired apps by name; ``UsageError`` when it is for another environment."""
    if plan.env != env:
        raise UsageError(f"the plan is for environment {plan.env}, this target is {env}")
    return {d.app: d for d in plan.desired}
