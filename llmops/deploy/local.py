"""The ``local`` deploy target: the embedded default, no Docker needed.

Each app of an environment runs as ``llmops serve <app> --bundle <file>`` processes,
blue/green, behind a supervisor (``python -m llmops.adapters.supervisor``) that listens
on the app's stable port, forwards requests to the active colour, restarts a crashed
backend and outlives the CLI. ``LocalTarget`` implements the ``Target`` protocol with
the same plan/apply/rollback behaviour as Kubernetes; used by ``llmops.ops`` (plan,
apply, rollback, ``up``/``down``) and ``llmops.reconcile``.

State lives under ``<repo>/.llmops/targets/<env>/`` (``.llmops/`` is gitignored)::

    apps/<app>/state.json        what runs: supervisor and backend PIDs, ports, active
                                 colour, release and fingerprint per colour (written
                                 atomically by the supervisor; never an env value)
    apps/<app>/logs/             supervisor.log, blue.log, green.log (+ .1, the previous)
    releases/<digest>.json       the release bundles served, bytes from the archive
    .lock                        held by one apply/teardown at a time

Ports: app ``i`` of the environment (sorted by name, counting from 0) gets the stable
port ``basePort + 10 * i``; its blue backend listens on stable + 1 and green on
stable + 2 (127.0.0.1 only). An app keeps its port once deployed, so adding an app
never moves another; a new app takes the lowest free slot. This module plans purely and
orchestrates; every process, signal and HTTP request goes through
``llmops.adapters.process``.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from llmops.adapters import process
from llmops.archive.base import Archive
from llmops.deploy.bluegreen import LOG_TAIL_LINES as _LOG_TAIL_LINES
from llmops.deploy.bluegreen import (
    Failed,
    check_desired,
    check_plan,
    probe_ready,
    proxy_argv,
    start_proxy,
    update_lines,
)
from llmops.deploy.target import Verify
from llmops.domain.deploy import (
    ENV_API_KEY_VAR,
    ENV_MODEL_URL,
    ApplyResult,
    Change,
    Colour,
    Deployed,
    DeployPlan,
    DesiredApp,
    LiveApp,
    TargetKind,
    other_colour,
)
from llmops.domain.errors import ExternalError, LlmopsError, UsageError

HOST = "127.0.0.1"
#: ports per app: the stable port, then blue (+1) and green (+2); the rest are spare
SLOT_WIDTH = 10
STATE_FILE = "state.json"
SUPERVISOR_MODULE = "llmops.adapters.supervisor"
COLOUR_OFFSET: Mapping[Colour, int] = {"blue": 1, "green": 2}
#: variables of the deploying process every backend and supervisor gets; anything else
#: (an API key included) reaches a backend only as a DesiredApp variable or secret
PASS_THROUGH = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)


def state_root_for(repo_root: Path) -> Path:
    """Where every environment's local state lives: ``<repo>/.llmops/targets``."""
    return repo_root / ".llmops" / "targets"


def stable_port(base_port: int, slot: int) -> int:
    return base_port + SLOT_WIDTH * slot


def colour_port(stable: int, colour: Colour) -> int:
    return stable + COLOUR_OFFSET[colour]


def endpoint_of(port: int) -> str:
    return f"http://{HOST}:{port}"


def port_of(endpoint: str | None) -> int | None:
    """The port of an ``http://127.0.0.1:<port>`` endpoint; None for anything else."""
    if not endpoint or not endpoint.startswith(f"http://{HOST}:"):
        return None
    tail = endpoint.rsplit(":", 1)[1]
    return int(tail) if tail.isdigit() else None


def assign_ports(apps: Iterable[str], held: Mapping[str, int], base_port: int) -> dict[str, int]:
    """The stable port of every app in ``apps`` (and every app in ``held``).

    An app keeps the port it ``held`` while that is a slot of ``base_port``; the others
    take the free slots lowest first, in sorted name order. ``UsageError`` when the ports
    run out."""
    ports: dict[str, int] = {}
    taken: set[int] = set()
    for app in sorted(held):
        port = held[app]
        if port >= base_port and (port - base_port) % SLOT_WIDTH == 0 and port not in taken:
            ports[app] = port
            taken.add(port)
    slot = 0
    for app in sorted(set(apps) | set(held)):
        if app in ports:
            continue
        while stable_port(base_port, slot) in taken:
            slot += 1
        port = stable_port(base_port, slot)
        if port + SLOT_WIDTH - 1 > 65535:
            raise UsageError(
                f"no port left for app {app!r} above basePort {base_port}: "
                f"each app takes {SLOT_WIDTH}; lower spec.target.basePort"
            )
        ports[app] = port
        taken.add(port)
    return ports


# --- what the state files say -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackendState:
    """One colour's backend as the supervisor last recorded it."""

    colour: Colour
    port: int
    pid: int | None
    release: str
    fingerprint: str
    bundle: str
    status: str
    restarts: int
    exit_code: int | None
    log: str


@dataclass(frozen=True, slots=True)
class AppState:
    """An app's ``state.json``."""

    app: str
    env: str
    directory: Path
    supervisor_pid: int | None
    port: int
    control: Path
    active: Colour | None
    stopped: bool
    backends: Mapping[Colour, BackendState] = field(default_factory=dict)

    @property
    def serving(self) -> BackendState | None:
        return self.backends.get(self.active) if self.active else None


def parse_state(document: Mapping[str, Any], directory: Path) -> AppState:
    """An ``AppState`` from a state file's JSON; ``ValueError`` when it is not one."""
    try:
        supervisor = document["supervisor"]
        backends: dict[Colour, BackendState] = {}
        for colour, raw in dict(document.get("backends") or {}).items():
            if colour not in COLOUR_OFFSET:
                raise ValueError(f"unknown colour {colour!r}")
            code = raw.get("exit_code")
            backends[colour] = BackendState(
                colour=colour,
                port=int(raw["port"]),
                pid=int(raw["pid"]) if raw.get("pid") else None,
                release=str(raw.get("release", "")),
                fingerprint=str(raw.get("fingerprint", "")),
                bundle=str(raw.get("bundle", "")),
                status=str(raw.get("status", "")),
                restarts=int(raw.get("restarts", 0)),
                exit_code=int(code) if code is not None else None,
                log=str(raw.get("log", "")),
            )
        active = document.get("active")
        if active is not None and active not in COLOUR_OFFSET:
            raise ValueError(f"unknown active colour {active!r}")
        return AppState(
            app=str(document["app"]),
            env=str(document["env"]),
            directory=directory,
            supervisor_pid=int(supervisor["pid"]) if supervisor.get("pid") else None,
            port=int(supervisor["port"]),
            control=Path(supervisor["control"]),
            active=cast("Colour | None", active),
            stopped=bool(document.get("stopped", False)),
            backends=backends,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a local target state file ({type(exc).__name__}: {exc})") from exc


def supervisor_markers(directory: Path) -> tuple[str, ...]:
    """What a supervisor's argv carries, to tell it from a process that reused its PID."""
    return (SUPERVISOR_MODULE, str(directory))


def backend_markers(backend: BackendState) -> tuple[str, ...]:
    return (backend.bundle, str(backend.port))


@dataclass(frozen=True, slots=True)
class AppStatus:
    """An app's state file checked against the processes and ports."""

    app: str
    directory: Path
    state: AppState | None
    #: why the state file could not be read
    problem: str | None
    supervisor_alive: bool
    drift: tuple[str, ...]
    ready: bool
    #: colours running beside the active one (an apply interrupted before it retired them)
    leftovers: tuple[Colour, ...] = ()

    def live(self, env: str) -> LiveApp:
        state = self.state
        serving = state.serving if state is not None else None
        return LiveApp(
            app=self.app,
            env=env,
            release=serving.release if serving is not None else None,
            fingerprint=serving.fingerprint if serving is not None else None,
            colour=state.active if state is not None else None,
            ready=self.ready,
            endpoint=endpoint_of(state.port) if state is not None else None,
            drift=self.drift,
        )


def backend_environment(
    desired: DesiredApp,
    environ: Mapping[str, str],
    *,
    model_url: str | None = None,
    extra: Mapping[str, str] | None = None,
    read_file: Callable[[str], str] | None = None,
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The environment a backend of ``desired`` starts with, and notes on what is missing.

    The deploying process's ``PASS_THROUGH`` variables, then ``extra``, then the app's
    variables (the runtime contract: ``LLMOPS_ENVIRONMENT``, ``LLMOPS_MODEL_URL`` …;
    ``model_url`` replaces ``LLMOPS_MODEL_URL``), then its secrets: a ``from_env`` secret
    is the deploying process's variable of that name, a Kubernetes secret is read from
    the variable it would be mounted as (``LLMOPS_SECRET_<NAME>_<KEY>``, export it), a
    ``file`` secret with a name is read from the file. The variable
    ``LLMOPS_MODEL_API_KEY_ENV`` names is passed through too. Values never leave memory.
    """
    env = {name: environ[name] for name in PASS_THROUGH if name in environ}
    env.update(extra or {})
    env.update(desired.env_vars)
    if model_url is not None:
        env[ENV_MODEL_URL] = model_url
    notes: list[str] = []
    for secret in desired.secret_env:
        if not secret.name:
            continue  # a file the runtime reads itself
        source = secret.from_env or secret.name
        if secret.file is not None and secret.from_env is None and read_file is not None:
            try:
                env[secret.name] = read_file(secret.file).strip()
            except OSError as exc:
                notes.append(f"{secret.name}: cannot read {secret.file} ({exc.strerror or exc})")
        elif source in environ:
            env[secret.name] = environ[source]
        else:
            notes.append(f"{secret.name}: {source} is not set in the deploying environment")
    key_var = env.get(ENV_API_KEY_VAR)
    if key_var and key_var not in env:
        if key_var in environ:
            env[key_var] = environ[key_var]
        else:
            notes.append(f"{key_var}: not set in the deploying environment")
    return env, tuple(notes)


def backend_argv(
    python: str, app: str, bundle: Path, port: int, model_url: str | None
) -> list[str]:
    """``<python> -m llmops serve <app> --bundle <file> --host 127.0.0.1 --port <port>``.

    ``--model-url`` repeats ``LLMOPS_MODEL_URL`` for a ``serve`` that does not read the
    variable (both carry the same value)."""
    argv = [python, "-m", "llmops", "serve", app, "--bundle", str(bundle)]
    argv += ["--host", HOST, "--port", str(port), "--log-level", "info"]
    if model_url:
        argv += ["--model-url", model_url]
    return argv


_Failed = Failed


class LocalTarget:
    """One environment's apps as local processes behind per-app supervisors."""

    kind: TargetKind = "local"

    def __init__(
        self,
        state_root: Path,
        env: str,
        base_port: int,
        archive: Archive,
        *,
        python: str = sys.executable,
        model_url: str | None = None,
        environ: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        connect_wait: float = 10.0,
    ) -> None:
        """``state_root`` holds every environment's state (``<repo>/.llmops/targets``).
        ``model_url`` overrides every app's model endpoint (e.g. the stub); ``environ``
        is where variables and secrets are read from (default: this process's);
        ``extra_env`` is added to every backend's environment."""
        self.state_root = Path(os.path.abspath(state_root))
        self.env = env
        self.base_port = base_port
        self.archive = archive
        self.python = python
        self.model_url = model_url
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.extra_env = dict(extra_env or {})
        self.connect_wait = connect_wait

    @property
    def env_dir(self) -> Path:
        return self.state_root / self.env

    def app_dir(self, app: str) -> Path:
        return self.env_dir / "apps" / app

    def release_file(self, digest: str) -> Path:
        return self.env_dir / "releases" / f"{digest}.json"

    # --- live -----------------------------------------------------------------------------
    def status(self) -> dict[str, AppStatus]:
        """Every app with a state file, checked (PIDs, release files, health)."""
        apps = self.env_dir / "apps"
        if not apps.is_dir():
            return {}
        found: dict[str, AppStatus] = {}
        for directory in sorted(p for p in apps.iterdir() if (p / STATE_FILE).is_file()):
            found[directory.name] = self._inspect(directory)
        return found

    def live(self) -> dict[str, LiveApp]:
        return {app: status.live(self.env) for app, status in self.status().items()}

    def _inspect(self, directory: Path) -> AppStatus:
        app = directory.name
        try:
            document = process.read_json(directory / STATE_FILE)
            if document is None:
                raise ValueError("it is gone")
            state = parse_state(document, directory)
        except (OSError, ValueError) as exc:
            problem = f"state file {directory / STATE_FILE} cannot be read: {exc}"
            return AppStatus(app, directory, None, problem, False, (problem,), False)
        drift: list[str] = []
        if state.app != app or state.env != self.env:
            drift.append(f"state file names {state.app}/{state.env}, not {app}/{self.env}")
        alive = process.owns(state.supervisor_pid, supervisor_markers(directory))
        if state.stopped:
            drift.append("the supervisor was stopped")
        elif not alive:
            drift.append(f"the supervisor (pid {state.supervisor_pid}) is not running")
        serving = state.serving
        serving_alive = False
        if serving is None:
            drift.append("no colour is active")
        elif alive:
            serving_alive = process.owns(serving.pid, backend_markers(serving))
            if serving.status == "restarting":
                drift.append(
                    f"the {serving.colour} backend exited (code {serving.exit_code}) and is "
                    f"restarting ({serving.restarts} restarts so far)"
                )
            elif not serving_alive:
                drift.append(f"the {serving.colour} backend (pid {serving.pid}) is not running")
        if serving is not None:
            file_problem = _release_file_problem(Path(serving.bundle), serving.release)
            if file_problem:
                drift.append(file_problem)
        leftovers: list[Colour] = []
        for colour, backend in sorted(state.backends.items()):
            if colour != state.active and backend.status == "running" and alive:
                leftovers.append(colour)
                drift.append(
                    f"the {colour} backend ({backend.release}) runs but does not serve "
                    "(an interrupted apply?)"
                )
        ready = False
        if alive and serving_alive and not state.stopped:
            answer, _ = process.probe(endpoint_of(state.port) + "/healthz", timeout=2.0)
            ready = answer is not None and answer.status == 200
        return AppStatus(app, directory, state, None, alive, tuple(drift), ready, tuple(leftovers))

    # --- plan -----------------------------------------------------------------------------
    def plan(self, desired: Sequence[DesiredApp], live: Mapping[str, LiveApp]) -> DeployPlan:
        """Desired vs live, pure: ``create`` what does not run, ``update`` what runs another
        fingerprint, drifted or unhealthy, ``delete`` what runs but is not desired,
        ``unchanged`` the rest. Diff lines: ``-``/``+`` values, ``!`` drift."""
        names = check_desired(self.env, desired)
        held = {app: p for app, la in live.items() if (p := port_of(la.endpoint)) is not None}
        ports = assign_ports(names, held, self.base_port)
        changes: list[Change] = []
        for d in desired:
            endpoint = endpoint_of(ports[d.app])
            obj = f"process {d.app} ({endpoint})"
            current = live.get(d.app)
            if current is None:
                diff = (f"+ release: {d.release}", f"+ endpoint: {endpoint}")
                changes.append(Change("create", d.app, obj, diff))
                continue
            lines = update_lines(current, d, endpoint, "variables, secrets, replicas or resources")
            changes.append(Change("update" if lines else "unchanged", d.app, obj, tuple(lines)))
        for app in sorted(set(live) - set(names)):
            current = live[app]
            obj = f"process {app} ({current.endpoint})"
            changes.append(Change("delete", app, obj, (f"- release: {current.release}",)))
        return DeployPlan(self.env, "local", tuple(desired), tuple(changes))

    # --- apply ----------------------------------------------------------------------------
    def apply(
        self,
        plan: DeployPlan,
        *,
        verify: Verify | None = None,
        timeout: float = 120.0,
        grace: float = 0.0,
    ) -> ApplyResult:
        """Apply ``plan`` once; apps are independent (deployed in parallel, one failure
        never blocks another). Per app: start the other colour's backend, wait for
        ``/healthz`` then ``/readyz`` (serving this release) within ``timeout``, ``verify``
        it, switch the stable port to it, stop the old colour after ``grace`` seconds. On
        any failure the new backend is stopped and the old colour keeps serving
        (``rolled-back``; ``failed`` when nothing served before)."""
        desired = check_plan(plan, self.env)
        with process.file_lock(self.env_dir / ".lock", timeout=max(timeout, 60.0)):
            statuses = self.status()
            held = {a: s.state.port for a, s in statuses.items() if s.state is not None}
            ports = assign_ports(desired, held, self.base_port)

            def one(change: Change) -> Deployed:
                status = statuses.get(change.app)
                try:
                    if change.kind == "delete":
                        return self._prune(change.app, status)
                    if change.kind == "unchanged":
                        return self._unchanged(change.app, status)
                    return self._deploy(
                        desired[change.app], status, ports[change.app], verify, timeout, grace
                    )
                except _Failed as exc:
                    message = f"{exc.reason}\n{exc.detail}" if exc.detail else exc.reason
                    return Deployed(change.app, self.env, None, "failed", message=message)
                except (LlmopsError, OSError, ValueError) as exc:
                    return Deployed(change.app, self.env, None, "failed", message=str(exc))

            workers = max(1, min(4, len(plan.changes)))
            with ThreadPoolExecutor(workers, thread_name_prefix="llmops-local") as pool:
                results = tuple(pool.map(one, plan.changes))
            self._collect_release_files()
        return ApplyResult(self.env, "local", results)

    def _unchanged(self, app: str, status: AppStatus | None) -> Deployed:
        state = status.state if status is not None else None
        serving = state.serving if state is not None else None
        release = serving.release if serving is not None else None
        return Deployed(
            app,
            self.env,
            release,
            "unchanged",
            colour=state.active if state is not None else None,
            endpoint=endpoint_of(state.port) if state is not None else None,
            previous=release,
        )

    def _deploy(
        self,
        desired: DesiredApp,
        status: AppStatus | None,
        stable: int,
        verify: Verify | None,
        timeout: float,
        grace: float,
    ) -> Deployed:
        app = desired.app
        state = status.state if status is not None else None
        old = state.serving if state is not None else None
        previous = old.release if old is not None else None
        notes: list[str] = []
        if state is not None and state.port != stable and status is not None:
            notes.append(f"moved from {endpoint_of(state.port)}")
            self._stop_supervisor(state)
            state = old = None
        old_serves = bool(status and status.supervisor_alive and old and status.ready)
        if (
            status is not None
            and old is not None
            and old_serves
            and old.fingerprint == desired.fingerprint
            and status.leftovers
            and len(status.drift) == len(status.leftovers)
        ):
            return self._retire_leftovers(desired, status, stable)
        control: process.ControlClient | None = None
        colour: Colour | None = None
        active: Colour | None = None
        try:
            bundle = self._materialise(desired)
            control = self._ensure_supervisor(app, stable, status, timeout)
            code, current = control.request("GET", "/status")
            active = cast("Colour | None", current.get("active"))
            colour = other_colour(active) if active else "blue"
            port = colour_port(stable, colour)
            env, missing = backend_environment(
                desired,
                self.environ,
                model_url=self.model_url,
                extra=self.extra_env,
                read_file=lambda path: Path(path).read_text(encoding="utf-8"),
            )
            notes += missing
            spec = {
                "port": port,
                "argv": backend_argv(self.python, app, bundle, port, env.get(ENV_MODEL_URL)),
                "env": env,
                "cwd": str(self.app_dir(app)),
                "release": desired.release,
                "fingerprint": desired.fingerprint,
                "bundle": str(bundle),
            }
            code, answer = control.request("PUT", f"/backends/{colour}", spec, timeout=30.0)
            if code != 200:
                raise _Failed(f"cannot start the {colour} backend: {answer.get('error', code)}")
            self._wait_ready(control, desired, colour, port, timeout)
            if verify is not None:
                try:
                    result = verify(desired, endpoint_of(port))
                except Exception as exc:  # a broken check must not leave two colours up
                    raise _Failed(f"verify raised {type(exc).__name__}: {exc}") from exc
                if not result.ok:
                    raise _Failed(f"verify failed: {result.message or 'no reason given'}")
            code, answer = control.request("PUT", "/active", {"colour": colour})
            if code != 200:
                raise _Failed(f"cannot switch to {colour}: {answer.get('error', code)}")
        except (_Failed, LlmopsError, OSError) as exc:
            reason = exc.reason if isinstance(exc, _Failed) else str(exc)
            detail = exc.detail if isinstance(exc, _Failed) else ""
            if notes:
                reason += " (" + "; ".join(notes) + ")"
            return self._roll_back(
                desired, control, colour, old_serves, previous, reason, detail, state
            )
        if active is not None:
            if grace > 0:
                time.sleep(grace)
            try:
                code, answer = control.request(
                    "DELETE", f"/backends/{active}?drain=30&timeout=30", timeout=90.0
                )
                if code != 200:
                    notes.append(f"the old {active} backend was not stopped: {answer.get('error')}")
            except ExternalError as exc:
                notes.append(f"the old {active} backend was not stopped: {exc}")
        message = (
            f"{colour} backend on port {colour_port(stable, colour)} serves {endpoint_of(stable)}"
        )
        return Deployed(
            app,
            self.env,
            desired.release,
            "deployed",
            colour=colour,
            endpoint=endpoint_of(stable),
            message="; ".join([message, *notes]),
            previous=previous,
        )

    def _retire_leftovers(self, desired: DesiredApp, status: AppStatus, stable: int) -> Deployed:
        """The active colour already serves ``desired``: only stop the others."""
        assert status.state is not None
        control = process.ControlClient(status.state.control)
        for colour in status.leftovers:
            code, answer = control.request(
                "DELETE", f"/backends/{colour}?drain=30&timeout=30", timeout=90.0
            )
            if code != 200:
                raise _Failed(f"cannot stop the leftover {colour} backend: {answer.get('error')}")
        stopped = ", ".join(status.leftovers)
        return Deployed(
            desired.app,
            self.env,
            desired.release,
            "deployed",
            colour=status.state.active,
            endpoint=endpoint_of(stable),
            message=f"already serving; stopped the leftover {stopped} backend",
            previous=desired.release,
        )

    def _roll_back(
        self,
        desired: DesiredApp,
        control: process.ControlClient | None,
        colour: Colour | None,
        old_serves: bool,
        previous: str | None,
        reason: str,
        detail: str,
        state: AppState | None,
    ) -> Deployed:
        """Stop the new colour; the old one (if any) keeps serving."""
        app = desired.app
        tail = detail
        if colour is not None:
            tail = tail or process.log_tail(
                self.app_dir(app) / "logs" / f"{colour}.log", _LOG_TAIL_LINES
            )
        active = state.active if state is not None and old_serves else None
        if control is not None:
            try:
                if colour is not None:
                    control.request(
                        "DELETE", f"/backends/{colour}?drain=0&timeout=10", timeout=30.0
                    )
                _, now = control.request("GET", "/status")
                active = cast("Colour | None", now.get("active"))
            except ExternalError:
                active = None
        message = reason
        if tail:
            message += f"\n--- {colour or 'supervisor'} log (last lines) ---\n{tail}"
        if active is not None and old_serves:
            where = endpoint_of(state.port) if state is not None else None
            return Deployed(
                app,
                self.env,
                previous,
                "rolled-back",
                colour=active,
                endpoint=where,
                message=f"{message}\n{previous} keeps serving",
                previous=previous,
            )
        if active is None and control is not None:
            # nothing served before: leave nothing running
            current = (
                self._inspect(self.app_dir(app))
                if (self.app_dir(app) / STATE_FILE).exists()
                else None
            )
            if current is not None and current.state is not None:
                self._stop_supervisor(current.state)
                self._forget(app)
        return Deployed(app, self.env, previous, "failed", message=message, previous=previous)

    def _wait_ready(
        self,
        control: process.ControlClient,
        desired: DesiredApp,
        colour: Colour,
        port: int,
        timeout: float,
    ) -> None:
        """Until ``/healthz`` answers and ``/readyz`` is 200 for this release; ``_Failed``
        when the backend exits or ``timeout`` passes."""
        base = endpoint_of(port)
        deadline = time.monotonic() + timeout
        reason = "it did not answer"
        while True:
            _, current = control.request("GET", "/status")
            backend = (current.get("backends") or {}).get(colour) or {}
            if backend.get("status") != "running":
                raise _Failed(
                    f"the {colour} backend exited with code {backend.get('exit_code')} "
                    "before it was ready"
                )
            reason, ok = probe_ready(base, desired, "another process")
            if ok:
                return
            if time.monotonic() > deadline:
                raise _Failed(f"the {colour} backend was not ready within {timeout:g}s: {reason}")
            time.sleep(0.1)

    # --- supervisor -----------------------------------------------------------------------
    def _ensure_supervisor(
        self, app: str, stable: int, status: AppStatus | None, timeout: float
    ) -> process.ControlClient:
        directory = self.app_dir(app)
        state = status.state if status is not None else None
        if (
            state is not None
            and status is not None
            and status.supervisor_alive
            and not state.stopped
        ):
            control = process.ControlClient(state.control)
            if state.port == stable and control.answers(timeout=5.0):
                return control
        if state is not None:
            self._stop_supervisor(state)
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        argv = proxy_argv(
            self.python,
            SUPERVISOR_MODULE,
            directory,
            app,
            self.env,
            stable,
            HOST,
            self.connect_wait,
        )
        return start_proxy(
            argv,
            self.environ,
            PASS_THROUGH,
            directory,
            directory / "logs" / "supervisor.log",
            what="supervisor",
            app=app,
            stable=stable,
            timeout=timeout,
            markers=supervisor_markers,
        )

    def _stop_supervisor(self, state: AppState, timeout: float = 45.0) -> None:
        """Stop a supervisor (it stops its backends gracefully), then any backend left."""
        process.terminate(state.supervisor_pid, supervisor_markers(state.directory), timeout)
        for backend in state.backends.values():
            process.terminate(backend.pid, backend_markers(backend), timeout=15.0)

    def _forget(self, app: str) -> None:
        directory = self.app_dir(app)
        for name in (STATE_FILE, "control.sock"):
            (directory / name).unlink(missing_ok=True)

    def _prune(self, app: str, status: AppStatus | None) -> Deployed:
        state = status.state if status is not None else None
        serving = state.serving if state is not None else None
        if state is not None:
            self._stop_supervisor(state)
            if state.control.name.endswith(".sock"):
                state.control.unlink(missing_ok=True)
        self._forget(app)
        previous = serving.release if serving is not None else None
        return Deployed(
            app, self.env, None, "pruned", message="processes stopped", previous=previous
        )

    def stop_all(self) -> tuple[Deployed, ...]:
        """Stop every app of this environment (``llmops down``; test teardown)."""
        if not self.env_dir.is_dir():
            return ()
        with process.file_lock(self.env_dir / ".lock"):
            results = tuple(self._prune(app, status) for app, status in self.status().items())
            self._collect_release_files()
        return results

    # --- release files --------------------------------------------------------------------
    def _materialise(self, desired: DesiredApp) -> Path:
        """``releases/<digest>.json`` holding the release bundle from the archive."""
        path = self.release_file(desired.digest)
        if _release_file_problem(path, desired.release) is None:
            return path
        try:
            data = self.archive.get(desired.digest)
        except LlmopsError as exc:
            raise _Failed(f"release {desired.release}: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != desired.digest:
            raise _Failed(f"release {desired.release}: the archive returned other bytes")
        process.write_atomic(path, data, mode=0o644)
        return path

    def _collect_release_files(self) -> None:
        """Remove release files no state file refers to."""
        directory = self.env_dir / "releases"
        if not directory.is_dir():
            return
        used = {
            backend.bundle
            for status in self.status().values()
            if status.state is not None
            for backend in status.state.backends.values()
        }
        for path in directory.glob("*.json"):
            if str(path) not in used:
                path.unlink(missing_ok=True)


def _release_file_problem(path: Path, release: str) -> str | None:
    digest = release.rsplit(":", 1)[-1]
    try:
        data = path.read_bytes()
    except OSError:
        return f"the release file {path.name} is missing"
    if hashlib.sha256(data).hexdigest() != digest:
        return f"the release file {path.name} was changed"
    return None
