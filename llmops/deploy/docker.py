"""The ``docker`` deploy target: each app's release image on the local Docker Engine,
blue/green behind a stable port, with the local and Kubernetes targets' plan/apply/rollback
behaviour.

Per app of an environment:

- two containers at most, ``llmops-<env>-<app>-blue`` and ``-green``, started detached from
  ``DesiredApp.image`` with restart policy ``unless-stopped``, as user 10001, a read-only
  root filesystem with a tmpfs ``/tmp``, the memory limit ``DesiredApp.memory`` (swap off)
  and a CPU weight from ``DesiredApp.cpu`` (a share, not a cap), the container port
  published on ``127.0.0.1:<colour port>`` only;
- labels that make the engine the source of truth: ``app.kubernetes.io/managed-by=llmops``,
  ``llmops.dev/environment``, ``app.kubernetes.io/name``, ``llmops.dev/colour``,
  ``llmops.dev/release``, ``llmops.dev/fingerprint`` and ``llmops.dev/port`` (the app's
  stable port) — never an environment value;
- a proxy process (``python -m llmops.adapters.docker_proxy``) on the stable port that
  forwards each request to the active colour and says which one that is.

Ports are the local target's (``llmops.deploy.local``): app ``i`` (sorted by name) gets
the stable port ``basePort + 10 * i``, blue is stable + 1, green stable + 2; an app keeps
its port once deployed. The two targets agree, so an environment can move between them.

The containers reach a model server on the host as ``host.docker.internal`` (mapped to
the engine's ``host-gateway``, no ``--network host``): a ``LLMOPS_MODEL_URL`` on
127.0.0.1, localhost, 0.0.0.0 or [::1] is rewritten to that name, and the model server
must listen on an address the bridge reaches (0.0.0.0, or the docker0 address).

Secrets: a ``from_env`` secret (and the variable ``LLMOPS_MODEL_API_KEY_ENV`` names) is
read from the deploying process when a container is created and handed to the engine in
the create request, like ``docker run -e``; it is never written to a file or a label by
llmops (the engine keeps container configuration as root-only files, and ``docker
inspect`` shows it to whoever may use the engine).

State under ``<state_root>/<env>/docker/`` (``.llmops/`` is gitignored):
``apps/<app>/proxy.json`` (the proxy's PID, port and active colour), ``apps/<app>/proxy.log``,
``.lock`` (one apply at a time). Everything else is read from the engine.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit, urlunsplit

from llmops.adapters import process
from llmops.adapters.docker_run import ContainerEngine, ContainerInfo, ContainerSpec
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
from llmops.deploy.local import (
    HOST,
    PASS_THROUGH,
    assign_ports,
    backend_environment,
    colour_port,
    endpoint_of,
    port_of,
)
from llmops.deploy.target import Verify
from llmops.domain.deploy import (
    APP_LABEL,
    COLOUR_LABEL,
    ENV_LABEL,
    ENV_MODEL_URL,
    FINGERPRINT_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RELEASE_ANNOTATION,
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
from llmops.domain.errors import ExternalError, LlmopsError

PROXY_MODULE = "llmops.adapters.docker_proxy"
PROXY_STATE = "proxy.json"
#: the label holding the app's stable port, so a deployed app keeps it
PORT_LABEL = "llmops.dev/port"
#: the name containers reach the host by
HOST_ALIAS = "host.docker.internal"
EXTRA_HOSTS: Mapping[str, str] = {HOST_ALIAS: "host-gateway"}
CONTAINER_USER = "10001:10001"
TMPFS: Mapping[str, str] = {"/tmp": "rw,nosuid,nodev,size=64m"}
RESTART_POLICY = "unless-stopped"
#: seconds a stopped container gets between SIGTERM and SIGKILL
STOP_TIMEOUT = 30.0
#: seconds the proxy waits for requests in flight to the old colour before it is stopped
DRAIN_SECONDS = 30.0
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "0.0.0.0", "::1", "::"})
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


# --- pure parts ---------------------------------------------------------------------------


def container_name(env: str, app: str, colour: Colour) -> str:
    return f"llmops-{env}-{app}-{colour}"


def quantity(value: str) -> float:
    """A Kubernetes quantity (``256Mi``, ``1G``, ``250m``, ``2``) as a number."""
    text = value.strip()
    for suffix, factor in (*_BINARY.items(), *_DECIMAL.items()):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def memory_bytes(value: str) -> int:
    """``DesiredApp.memory`` in bytes (``256Mi`` → 268435456)."""
    return int(quantity(value))


def cpu_shares(value: str) -> int:
    """``DesiredApp.cpu`` as a relative CPU weight: one CPU is 1024 (``250m`` → 256).

    A weight, like a Kubernetes request, not a cap: an idle machine gives a container
    all it asks for."""
    return max(2, round(quantity(value) * 1024))


def reachable_from_container(url: str) -> str:
    """``url`` with a loopback host (127.0.0.1, localhost, 0.0.0.0, [::1]) replaced by
    ``host.docker.internal``: inside a container those name the container itself."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host not in _LOOPBACK and not host.startswith("127."):
        return url
    netloc = HOST_ALIAS if parts.port is None else f"{HOST_ALIAS}:{parts.port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def container_labels(desired: DesiredApp, colour: Colour, stable: int) -> dict[str, str]:
    """The labels of one colour's container: who owns it and what it runs (no values)."""
    return {
        MANAGED_BY_LABEL: MANAGED_BY,
        ENV_LABEL: desired.env,
        APP_LABEL: desired.app,
        COLOUR_LABEL: colour,
        RELEASE_ANNOTATION: desired.release,
        FINGERPRINT_ANNOTATION: desired.fingerprint,
        PORT_LABEL: str(stable),
    }


def container_environment(
    desired: DesiredApp,
    environ: Mapping[str, str],
    *,
    model_url: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The environment of ``desired``'s container and notes on what is missing.

    The local target's rules (``llmops.deploy.local.backend_environment``) without the
    host's own variables (PATH, HOME … stay the image's): the app's variables, then its
    secrets from ``environ``; ``model_url`` replaces ``LLMOPS_MODEL_URL``, which is made
    reachable from the container (:func:`reachable_from_container`)."""
    visible = {k: v for k, v in environ.items() if k not in PASS_THROUGH}
    env, notes = backend_environment(
        desired,
        visible,
        model_url=model_url,
        extra=extra,
        read_file=lambda path: Path(path).read_text(encoding="utf-8"),
    )
    if env.get(ENV_MODEL_URL):
        env[ENV_MODEL_URL] = reachable_from_container(env[ENV_MODEL_URL])
    return env, notes


def container_spec(
    desired: DesiredApp,
    colour: Colour,
    stable: int,
    environment: Mapping[str, str],
) -> ContainerSpec:
    """What runs for one colour of ``desired`` (its image must be set)."""
    assert desired.image is not None
    return ContainerSpec(
        name=container_name(desired.env, desired.app, colour),
        image=desired.image,
        labels=container_labels(desired, colour, stable),
        ports={desired.port: colour_port(stable, colour)},
        environment=dict(environment),
        user=CONTAINER_USER,
        read_only=True,
        tmpfs=dict(TMPFS),
        memory=memory_bytes(desired.memory),
        cpu_shares=cpu_shares(desired.cpu),
        restart=RESTART_POLICY,
        extra_hosts=dict(EXTRA_HOSTS),
    )


# --- what runs ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProxyState:
    """An app's ``proxy.json``, or the proxy's own ``/status`` when it answers."""

    pid: int | None
    port: int
    control: Path
    active: Colour | None
    active_port: int | None
    stopped: bool


def parse_proxy(document: Mapping[str, object]) -> ProxyState:
    """``ValueError`` when ``document`` is not a proxy state."""
    try:
        proxy = cast("Mapping[str, object]", document["proxy"])
        active = document.get("active")
        if active not in (None, "blue", "green"):
            raise ValueError(f"unknown active colour {active!r}")
        active_port = document.get("active_port")
        pid = proxy.get("pid")
        return ProxyState(
            pid=int(cast(int, pid)) if pid else None,
            port=int(cast(int, proxy["port"])),
            control=Path(str(proxy["control"])),
            active=active,
            active_port=int(cast(int, active_port)) if active_port is not None else None,
            stopped=bool(document.get("stopped", False)),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a docker proxy state ({type(exc).__name__}: {exc})") from exc


@dataclass(frozen=True, slots=True)
class AppStatus:
    """One app's containers and proxy, checked."""

    app: str
    directory: Path
    containers: Mapping[Colour, ContainerInfo]
    proxy: ProxyState | None
    proxy_alive: bool
    #: the colour the stable port serves (the proxy's; else the only container up)
    active: Colour | None
    #: the app's stable port, when anything says
    port: int | None
    drift: tuple[str, ...]
    ready: bool
    #: containers of this app that are neither blue nor green, or duplicates
    strays: tuple[ContainerInfo, ...] = ()

    @property
    def serving(self) -> ContainerInfo | None:
        return self.containers.get(self.active) if self.active else None

    def live(self, env: str) -> LiveApp:
        serving = self.serving
        return LiveApp(
            app=self.app,
            env=env,
            release=serving.labels.get(RELEASE_ANNOTATION) if serving is not None else None,
            fingerprint=(
                serving.labels.get(FINGERPRINT_ANNOTATION) if serving is not None else None
            ),
            colour=self.active,
            ready=self.ready,
            endpoint=endpoint_of(self.port) if self.port is not None else None,
            drift=self.drift,
        )


_Failed = Failed


def proxy_markers(directory: Path) -> tuple[str, ...]:
    """What a proxy's argv carries, to tell it from a process that reused its PID."""
    return (PROXY_MODULE, str(directory))


class DockerTarget:
    """One environment's apps as containers on the local Docker Engine."""

    kind: TargetKind = "docker"

    def __init__(
        self,
        env: str,
        base_port: int,
        state_root: Path,
        *,
        engine: ContainerEngine | str | None = None,
        model_url: str | None = None,
        environ: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        connect_wait: float = 10.0,
    ) -> None:
        """``state_root`` holds every environment's state (``<repo>/.llmops/targets``).
        ``engine``: a connected engine, or the address to connect to (default
        ``$DOCKER_HOST`` or the local socket), connected on first use. ``model_url``
        overrides every app's model endpoint; ``environ`` is where secrets are read
        from (default: this process's); ``extra_env`` is added to every container."""
        self.env = env
        self.base_port = base_port
        self.state_root = Path(os.path.abspath(state_root))
        self._engine = engine if isinstance(engine, ContainerEngine) else None
        self._address = engine if isinstance(engine, str) else None
        self.model_url = model_url
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.extra_env = dict(extra_env or {})
        self.python = python
        self.connect_wait = connect_wait

    @property
    def env_dir(self) -> Path:
        return self.state_root / self.env / "docker"

    def app_dir(self, app: str) -> Path:
        return self.env_dir / "apps" / app

    def engine(self) -> ContainerEngine:
        """The engine, connected (and pinged) on first use: ``ExternalError`` when it
        does not answer, before anything is changed."""
        if self._engine is None:
            self._engine = ContainerEngine.connect(self._address)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    # --- live -----------------------------------------------------------------------------
    def containers(self) -> tuple[ContainerInfo, ...]:
        """Every container llmops runs for this environment."""
        return self.engine().containers({MANAGED_BY_LABEL: MANAGED_BY, ENV_LABEL: self.env})

    def status(self) -> dict[str, AppStatus]:
        """Every app with a container or a proxy state here, checked."""
        by_app: dict[str, list[ContainerInfo]] = {}
        for info in self.containers():
            app = info.labels.get(APP_LABEL)
            if app:
                by_app.setdefault(app, []).append(info)
        apps_dir = self.env_dir / "apps"
        with_proxy = (
            {p.name for p in apps_dir.iterdir() if (p / PROXY_STATE).is_file()}
            if apps_dir.is_dir()
            else set()
        )
        return {
            app: self._inspect(app, by_app.get(app, [])) for app in sorted(set(by_app) | with_proxy)
        }

    def live(self) -> dict[str, LiveApp]:
        return {app: status.live(self.env) for app, status in self.status().items()}

    def _proxy(self, directory: Path) -> tuple[ProxyState | None, bool, str | None]:
        """The proxy's state (its own answer when it runs), whether it runs, a problem."""
        try:
            document = process.read_json(directory / PROXY_STATE)
            if document is None:
                return None, False, None
            state = parse_proxy(document)
        except (OSError, ValueError) as exc:
            return None, False, f"the proxy state {directory / PROXY_STATE} cannot be read: {exc}"
        alive = not state.stopped and process.owns(state.pid, proxy_markers(directory))
        if alive:
            try:
                code, answer = process.ControlClient(state.control).request(
                    "GET", "/status", timeout=5.0
                )
                if code == 200:
                    state = parse_proxy(answer)
            except (ExternalError, ValueError):
                pass
        return state, alive, None

    def _inspect(self, app: str, found: Sequence[ContainerInfo]) -> AppStatus:
        directory = self.app_dir(app)
        drift: list[str] = []
        containers: dict[Colour, ContainerInfo] = {}
        strays: list[ContainerInfo] = []
        for info in found:
            colour = info.labels.get(COLOUR_LABEL)
            if colour in ("blue", "green") and info.name == container_name(
                self.env, app, cast(Colour, colour)
            ):
                containers[cast(Colour, colour)] = info
            else:
                strays.append(info)
                drift.append(
                    f"container {info.name} carries this app's labels but is not one of ours"
                )
        proxy, alive, problem = self._proxy(directory)
        if problem:
            drift.append(problem)
        active: Colour | None = proxy.active if proxy is not None else None
        if active is None and proxy is None:
            up = [c for c, info in containers.items() if info.up]
            active = up[0] if len(up) == 1 else None
        port: int | None = proxy.port if proxy is not None else None
        if port is None:
            labelled = {
                int(v)
                for info in containers.values()
                if (v := info.labels.get(PORT_LABEL, "")).isdigit()
            }
            port = min(labelled) if labelled else None
        if proxy is None:
            drift.append("no proxy serves the stable port")
        elif proxy.stopped:
            drift.append("the proxy was stopped")
        elif not alive:
            drift.append(f"the proxy (pid {proxy.pid}) is not running")
        serving = containers.get(active) if active else None
        if active is None:
            drift.append("no colour is active")
        elif serving is None:
            drift.append(
                f"the active {active} container {container_name(self.env, app, active)} is gone"
            )
        else:
            if not serving.up:
                drift.append(f"the {active} container {serving.name} is {serving.describe()}")
            expected = colour_port(port, active) if port is not None else None
            if expected is not None and expected not in serving.ports.values():
                drift.append(
                    f"the {active} container publishes {sorted(serving.ports.values())}, "
                    f"not port {expected}"
                )
            if (
                proxy is not None
                and alive
                and expected is not None
                and proxy.active_port != expected
            ):
                drift.append(f"the proxy forwards to port {proxy.active_port}, not {expected}")
        for colour, info in sorted(containers.items()):
            if colour != active:
                drift.append(
                    f"the {colour} container ({info.labels.get(RELEASE_ANNOTATION)}) exists but "
                    "does not serve (an interrupted apply?)"
                )
        ready = False
        if alive and serving is not None and serving.up and port is not None:
            answer, _ = process.probe(endpoint_of(port) + "/healthz", timeout=2.0)
            ready = answer is not None and answer.status == 200
        return AppStatus(
            app,
            directory,
            containers,
            proxy,
            alive,
            active,
            port,
            tuple(drift),
            ready,
            tuple(strays),
        )

    # --- plan -----------------------------------------------------------------------------
    def plan(self, desired: Sequence[DesiredApp], live: Mapping[str, LiveApp]) -> DeployPlan:
        """Desired vs live, pure: ``create`` what does not run, ``update`` what runs another
        fingerprint (release, image, variables, secrets, resources), drifted or unhealthy,
        ``delete`` what runs but is not desired, ``unchanged`` the rest. Diff lines:
        ``-``/``+`` values, ``~`` settings, ``!`` drift."""
        names = check_desired(self.env, desired)
        held = {app: p for app, la in live.items() if (p := port_of(la.endpoint)) is not None}
        ports = assign_ports(names, held, self.base_port)
        changes: list[Change] = []
        for d in desired:
            endpoint = endpoint_of(ports[d.app])
            current = live.get(d.app)
            colour: Colour = (
                other_colour(current.colour) if current is not None and current.colour else "blue"
            )
            obj = f"container {container_name(self.env, d.app, colour)} ({endpoint})"
            if current is None:
                diff = (
                    f"+ release: {d.release}",
                    f"+ image: {d.image}",
                    f"+ endpoint: {endpoint}",
                )
                changes.append(Change("create", d.app, obj, diff))
                continue
            lines = update_lines(current, d, endpoint, "image, variables, secrets or resources")
            if not lines and current.colour is not None:
                # nothing to do: name the container that serves
                serving = container_name(self.env, d.app, current.colour)
                obj = f"container {serving} ({endpoint})"
            changes.append(Change("update" if lines else "unchanged", d.app, obj, tuple(lines)))
        for app in sorted(set(live) - set(names)):
            current = live[app]
            obj = f"containers llmops-{self.env}-{app}-* ({current.endpoint})"
            changes.append(Change("delete", app, obj, (f"- release: {current.release}",)))
        return DeployPlan(self.env, "docker", tuple(desired), tuple(changes))

    # --- apply ----------------------------------------------------------------------------
    def apply(
        self,
        plan: DeployPlan,
        *,
        verify: Verify | None = None,
        timeout: float = 120.0,
        grace: float = 0.0,
    ) -> ApplyResult:
        """Apply ``plan`` once; apps are independent (in parallel, one failure never
        blocks another). Per app: start the other colour's container, wait for
        ``/healthz`` then ``/readyz`` (this release) within ``timeout``, ``verify`` it,
        switch the stable port to it, then after ``grace`` seconds (and once no request
        is in flight to it) stop and remove the old colour. On any failure the new
        container is removed and the old colour keeps serving (``rolled-back``;
        ``failed`` when nothing served before). An engine that does not answer raises
        ``ExternalError`` before anything is changed."""
        desired = check_plan(plan, self.env)
        engine = self.engine()
        engine.ping()
        with process.file_lock(self.env_dir / ".lock", timeout=max(timeout, 60.0)):
            statuses = self.status()
            held = {a: s.port for a, s in statuses.items() if s.port is not None}
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
                except (LlmopsError, OSError, ValueError) as exc:
                    return Deployed(change.app, self.env, None, "failed", message=str(exc))

            workers = max(1, min(4, len(plan.changes)))
            with ThreadPoolExecutor(workers, thread_name_prefix="llmops-docker") as pool:
                results = tuple(pool.map(one, plan.changes))
        return ApplyResult(self.env, "docker", results)

    def _unchanged(self, app: str, status: AppStatus | None) -> Deployed:
        live = status.live(self.env) if status is not None else None
        release = live.release if live is not None else None
        return Deployed(
            app,
            self.env,
            release,
            "unchanged",
            colour=live.colour if live is not None else None,
            endpoint=live.endpoint if live is not None else None,
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
        engine = self.engine()
        previous = status.live(self.env).release if status is not None else None
        if desired.image is None:
            return Deployed(
                app,
                self.env,
                previous,
                "failed",
                message=f"no image of {desired.release}: run `llmops build {app}` first",
                previous=previous,
            )
        notes: list[str] = []
        control: process.ControlClient | None = None
        colour: Colour | None = None
        new: ContainerInfo | None = None
        try:
            if not engine.has_image(desired.image):
                try:
                    engine.pull(desired.image)
                except ExternalError as exc:
                    raise _Failed(
                        f"the image {desired.image} is not in the engine and cannot be pulled: "
                        f"{exc}; run `llmops build {app}`"
                    ) from exc
            control, active = self._ensure_proxy(app, stable, status, timeout, notes)
            colour = other_colour(active) if active else "blue"
            # a leftover of an interrupted apply, or a stray with our name
            engine.remove(container_name(self.env, app, colour))
            env, missing = container_environment(
                desired, self.environ, model_url=self.model_url, extra=self.extra_env
            )
            notes += missing
            if desired.replicas > 1 or desired.autoscaling is not None:
                notes.append(
                    f"one container serves (replicas {desired.replicas} and autoscaling are "
                    "Kubernetes settings)"
                )
            port = colour_port(stable, colour)
            try:
                new = engine.run(container_spec(desired, colour, stable, env))
            except ExternalError as exc:
                raise _Failed(f"cannot start the {colour} container: {exc}") from exc
            self._wait_ready(engine, new, desired, colour, port, timeout)
            if verify is not None:
                try:
                    result = verify(desired, endpoint_of(port))
                except Exception as exc:  # a broken check must not leave two colours up
                    raise _Failed(f"verify raised {type(exc).__name__}: {exc}") from exc
                if not result.ok:
                    raise _Failed(f"verify failed: {result.message or 'no reason given'}")
            code, answer = control.request("PUT", "/active", {"colour": colour, "port": port})
            if code != 200:
                raise _Failed(f"cannot switch to {colour}: {answer.get('error', code)}")
        except (_Failed, LlmopsError, OSError) as exc:
            reason = exc.reason if isinstance(exc, _Failed) else str(exc)
            detail = exc.detail if isinstance(exc, _Failed) else ""
            return self._roll_back(desired, control, colour, new, previous, reason, detail)
        self._retire(app, control, colour, grace, notes)
        message = f"{colour} container {new.name} on port {port} serves {endpoint_of(stable)}"
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

    def _retire(
        self,
        app: str,
        control: process.ControlClient,
        colour: Colour,
        grace: float,
        notes: list[str],
    ) -> None:
        """After ``grace`` seconds and the old colour's requests: stop and remove every
        container of ``app`` but the new colour's."""
        engine = self.engine()
        keep = container_name(self.env, app, colour)
        doomed = [
            info
            for info in engine.containers(
                {MANAGED_BY_LABEL: MANAGED_BY, ENV_LABEL: self.env, APP_LABEL: app}
            )
            if info.name != keep
        ]
        if not doomed:
            return
        if grace > 0:
            time.sleep(grace)
        for info in doomed:
            for port in sorted(set(info.ports.values())):
                try:
                    code, answer = control.request(
                        "DELETE",
                        f"/backends/{port}?drain={DRAIN_SECONDS:g}",
                        timeout=DRAIN_SECONDS + 30.0,
                    )
                    if code == 200 and not answer.get("drained", True):
                        notes.append(f"requests to the old {info.name} were still in flight")
                except ExternalError as exc:
                    notes.append(f"the proxy did not drain port {port}: {exc}")
            try:
                engine.stop(info.id, timeout=STOP_TIMEOUT)
                engine.remove(info.id)
            except ExternalError as exc:
                notes.append(f"the old container {info.name} was not removed: {exc}")

    def _roll_back(
        self,
        desired: DesiredApp,
        control: process.ControlClient | None,
        colour: Colour | None,
        new: ContainerInfo | None,
        previous: str | None,
        reason: str,
        detail: str,
    ) -> Deployed:
        """Remove the new colour; the old one (if any) keeps serving."""
        app = desired.app
        engine = self.engine()
        name = container_name(self.env, app, colour) if colour is not None else None
        tail = detail
        if name is not None:
            try:
                tail = tail or engine.logs(new.id if new is not None else name, _LOG_TAIL_LINES)
                engine.remove(new.id if new is not None else name)
            except ExternalError as exc:
                reason += f"; the new container {name} was not removed: {exc}"
        message = reason
        if tail:
            message += f"\n--- {name or 'proxy'} log (last lines) ---\n{tail}"
        active: Colour | None = None
        serving: ContainerInfo | None = None
        if control is not None:
            try:
                _, now = control.request("GET", "/status")
                active = cast("Colour | None", now.get("active"))
            except ExternalError:
                active = None
        if active is not None:
            found = engine.inspect(container_name(self.env, app, active))
            serving = found if found is not None and found.up else None
        if serving is not None and active is not None:
            kept = serving.labels.get(RELEASE_ANNOTATION) or previous
            stable = serving.labels.get(PORT_LABEL, "")
            return Deployed(
                app,
                self.env,
                kept,
                "rolled-back",
                colour=active,
                endpoint=endpoint_of(int(stable)) if stable.isdigit() else None,
                message=f"{message}\n{kept} keeps serving",
                previous=previous,
            )
        if active is None:
            # nothing served before: leave nothing running
            self._stop_proxy(app)
            self._forget(app)
        return Deployed(app, self.env, previous, "failed", message=message, previous=previous)

    def _wait_ready(
        self,
        engine: ContainerEngine,
        container: ContainerInfo,
        desired: DesiredApp,
        colour: Colour,
        port: int,
        timeout: float,
    ) -> None:
        """Until ``/healthz`` answers and ``/readyz`` is 200 for this release; ``_Failed``
        when the container exits (or restarts) or ``timeout`` passes."""
        base = endpoint_of(port)
        deadline = time.monotonic() + timeout
        reason = "it did not answer"
        while True:
            info = engine.inspect(container.id)
            if info is None:
                raise _Failed(
                    f"the {colour} container {container.name} was removed before it was ready"
                )
            if not info.up or info.restart_count > 0:
                raise _Failed(
                    f"the {colour} container {info.name} stopped before it was ready: "
                    f"{info.describe()}"
                )
            reason, ok = probe_ready(base, desired, "another container")
            if ok:
                return
            if time.monotonic() > deadline:
                raise _Failed(
                    f"the {colour} container {info.name} was not ready within {timeout:g}s: {reason}"
                )
            time.sleep(0.2)

    # --- the proxy ------------------------------------------------------------------------
    def _ensure_proxy(
        self,
        app: str,
        stable: int,
        status: AppStatus | None,
        timeout: float,
        notes: list[str],
    ) -> tuple[process.ControlClient, Colour | None]:
        """The app's proxy on ``stable`` (started when it does not run there) and the
        colour it serves, when that colour's container is up."""
        directory = self.app_dir(app)
        proxy = status.proxy if status is not None else None
        if proxy is not None and status is not None and status.proxy_alive:
            control = process.ControlClient(proxy.control)
            if proxy.port == stable and control.answers(timeout=5.0):
                active = proxy.active
                serving = status.containers.get(active) if active else None
                if serving is not None and serving.up:
                    return control, active
                return control, None
        serving = status.serving if status is not None else None
        resume: tuple[Colour, int] | None = None
        if serving is not None and serving.up and status is not None and status.active:
            published = sorted(serving.ports.values())
            if published:
                resume = (status.active, published[0])
        if proxy is not None:
            if proxy.port != stable:
                notes.append(f"moved from {endpoint_of(proxy.port)}")
            self._stop_proxy(app)
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        argv = proxy_argv(
            self.python, PROXY_MODULE, directory, app, self.env, stable, HOST, self.connect_wait
        )
        if resume is not None:
            argv += ["--active", f"{resume[0]}:{resume[1]}"]
        control = start_proxy(
            argv,
            self.environ,
            PASS_THROUGH,
            directory,
            directory / "proxy.log",
            what="proxy",
            app=app,
            stable=stable,
            timeout=timeout,
            markers=proxy_markers,
        )
        return control, resume[0] if resume is not None else None

    def _stop_proxy(self, app: str, timeout: float = 30.0) -> None:
        directory = self.app_dir(app)
        proxy, _, _ = self._proxy(directory)
        if proxy is not None:
            process.terminate(proxy.pid, proxy_markers(directory), timeout)

    def _forget(self, app: str) -> None:
        directory = self.app_dir(app)
        proxy, _, _ = self._proxy(directory)
        if proxy is not None and proxy.control.name.endswith(".sock"):
            proxy.control.unlink(missing_ok=True)
        shutil.rmtree(directory, ignore_errors=True)

    # --- prune ----------------------------------------------------------------------------
    def _prune(self, app: str, status: AppStatus | None) -> Deployed:
        previous = status.live(self.env).release if status is not None else None
        self._stop_proxy(app)
        engine = self.engine()
        removed = 0
        for info in engine.containers(
            {MANAGED_BY_LABEL: MANAGED_BY, ENV_LABEL: self.env, APP_LABEL: app}
        ):
            engine.stop(info.id, timeout=STOP_TIMEOUT)
            removed += int(engine.remove(info.id))
        self._forget(app)
        return Deployed(
            app,
            self.env,
            None,
            "pruned",
            message=f"{removed} container(s) removed, proxy stopped",
            previous=previous,
        )

    def stop_all(self) -> tuple[Deployed, ...]:
        """Remove every app of this environment (``llmops down``; test teardown)."""
        self.engine().ping()
        with process.file_lock(self.env_dir / ".lock"):
            return tuple(self._prune(app, status) for app, status in self.status().items())


__all__ = [
    "DockerTarget",
    "container_environment",
    "container_labels",
    "container_name",
    "container_spec",
    "cpu_shares",
    "memory_bytes",
    "reachable_from_container",
]
