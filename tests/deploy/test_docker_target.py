"""The ``docker`` deploy target on a real Docker Engine: release images of the example app
(built by ``llmops.ops.build`` on the locally made base image), the real stub model on the
host, containers behind the stable-port proxy, blue/green with traffic flowing, rollback of
a failing container, prune, idempotence, and an engine that does not answer.

The pure parts (names, labels, quantities, the model URL rewrite, the container
environment, the plan) are tested without an engine. Every container a test starts is
removed by label in a finalizer, and every proxy it starts is killed by PID.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deploy_support import environment_of
from local_kit import free_port_block

from llmops import api
from llmops.adapters import process
from llmops.adapters.docker_engine import DockerEngine
from llmops.adapters.docker_run import ContainerEngine
from llmops.deploy.desired import desired_app
from llmops.deploy.docker import (
    HOST_ALIAS,
    PORT_LABEL,
    PROXY_MODULE,
    PROXY_STATE,
    DockerTarget,
    container_environment,
    container_labels,
    container_name,
    cpu_shares,
    memory_bytes,
    reachable_from_container,
)
from llmops.deploy.target import VerifyResult
from llmops.domain.deploy import (
    APP_LABEL,
    COLOUR_LABEL,
    ENV_LABEL,
    ENV_MODEL_URL,
    FINGERPRINT_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RELEASE_ANNOTATION,
    DesiredApp,
    LiveApp,
    SecretEnv,
)
from llmops.domain.errors import ExternalError
from llmops.ops.build import build_release
from llmops.ops.release import archive_for, work_bundle
from llmops.releases.bundle import Bundle
from llmops.stub.config import StubConfig
from llmops.stub.runner import StubServer

ROOT = Path(__file__).resolve().parents[2]
APP = "summarizer"
OTHER = "digest"
API_KEY_VAR = "OPENAI_API_KEY"


def _desired(**changes: Any) -> DesiredApp:
    base = DesiredApp(
        app="bot",
        env="dev",
        release="bot@sha256:" + "a" * 64,
        image="example/bot:" + "a" * 64,
        replicas=1,
        port=8080,
        cpu="250m",
        memory="256Mi",
        env_vars=(("LLMOPS_ENVIRONMENT", "dev"),),
    )
    return dataclasses.replace(base, **changes)


# --- pure parts ------------------------------------------------------------------------


def test_quantities() -> None:
    assert memory_bytes("256Mi") == 256 * 2**20
    assert memory_bytes("1Gi") == 2**30
    assert memory_bytes("500M") == 500_000_000
    assert memory_bytes("1048576") == 1048576
    assert memory_bytes("1.5Gi") == 3 * 2**29
    assert cpu_shares("250m") == 256
    assert cpu_shares("1") == 1024
    assert cpu_shares("1.5") == 1536
    assert cpu_shares("1m") == 2  # the engine's minimum weight


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9000/v1", f"http://{HOST_ALIAS}:9000/v1"),
        ("http://localhost:9000/v1", f"http://{HOST_ALIAS}:9000/v1"),
        ("http://0.0.0.0:9000/v1", f"http://{HOST_ALIAS}:9000/v1"),
        ("http://[::1]:9000/v1", f"http://{HOST_ALIAS}:9000/v1"),
        ("http://127.0.0.2/v1", f"http://{HOST_ALIAS}/v1"),
        ("http://user:pw@localhost:8000/v1?x=1", f"http://user:pw@{HOST_ALIAS}:8000/v1?x=1"),
        ("https://api.example.com/v1", "https://api.example.com/v1"),
        ("http://172.17.0.1:9000/v1", "http://172.17.0.1:9000/v1"),
        ("http://vllm.llm-prod.svc:8000/v1", "http://vllm.llm-prod.svc:8000/v1"),
    ],
)
def test_model_url_is_made_reachable_from_a_container(url: str, expected: str) -> None:
    assert reachable_from_container(url) == expected


def test_labels_name_the_owner_and_what_runs_never_a_value() -> None:
    desired = _desired(
        env_vars=(("LLMOPS_ENVIRONMENT", "dev"), ("PLAIN", "visible-value")),
        secret_env=(SecretEnv(API_KEY_VAR, from_env=API_KEY_VAR),),
    )
    labels = container_labels(desired, "green", 18080)
    assert labels == {
        MANAGED_BY_LABEL: MANAGED_BY,
        ENV_LABEL: "dev",
        APP_LABEL: "bot",
        COLOUR_LABEL: "green",
        RELEASE_ANNOTATION: desired.release,
        FINGERPRINT_ANNOTATION: desired.fingerprint,
        PORT_LABEL: "18080",
    }
    assert container_name("dev", "bot", "green") == "llmops-dev-bot-green"


def test_container_environment_passes_secrets_but_not_the_hosts_variables() -> None:
    desired = _desired(
        env_vars=(("LLMOPS_ENVIRONMENT", "dev"), (ENV_MODEL_URL, "http://localhost:1234/v1")),
        secret_env=(SecretEnv(API_KEY_VAR, from_env="DEPLOY_KEY"),),
    )
    environ = {"PATH": "/host/bin", "HOME": "/root", "DEPLOY_KEY": "sk-live", "OTHER": "x"}
    env, notes = container_environment(desired, environ, extra={"EXTRA": "1"})
    assert env == {
        "LLMOPS_ENVIRONMENT": "dev",
        ENV_MODEL_URL: f"http://{HOST_ALIAS}:1234/v1",
        API_KEY_VAR: "sk-live",
        "EXTRA": "1",
    }
    assert notes == ()
    # the target's model URL wins, and is rewritten too
    env, _ = container_environment(desired, environ, model_url="http://127.0.0.1:5555/v1")
    assert env[ENV_MODEL_URL] == f"http://{HOST_ALIAS}:5555/v1"
    # a missing secret is a note, not a value
    env, notes = container_environment(desired, {"PATH": "/bin"})
    assert API_KEY_VAR not in env
    assert notes == (f"{API_KEY_VAR}: DEPLOY_KEY is not set in the deploying environment",)


def _live(app: str, **fields: Any) -> LiveApp:
    values: dict[str, Any] = {
        "app": app,
        "env": "dev",
        "release": None,
        "fingerprint": None,
        "colour": "blue",
        "ready": True,
        "endpoint": None,
    }
    values.update(fields)
    return LiveApp(**values)


def test_plan_is_pure_and_keeps_ports(tmp_path: Path) -> None:
    target = DockerTarget("dev", 18080, tmp_path, engine="unix:///nonexistent/docker.sock")
    same = _desired(app="same")
    newer = _desired(app="newer")
    fresh = _desired(app="fresh")
    live = {
        # "same" holds the second slot; "newer" runs an older release on the first
        "same": _live(
            "same",
            release=same.release,
            fingerprint=same.fingerprint,
            endpoint="http://127.0.0.1:18090",
        ),
        "newer": _live(
            "newer",
            release="newer@sha256:" + "b" * 64,
            fingerprint="x",
            colour="green",
            endpoint="http://127.0.0.1:18080",
        ),
        "gone": _live("gone", release="gone@sha256:" + "c" * 64, endpoint="http://127.0.0.1:18100"),
    }
    plan = target.plan([fresh, newer, same], live)
    assert plan.target == "docker"
    kinds = {c.app: c.kind for c in plan.changes}
    assert kinds == {"fresh": "create", "newer": "update", "same": "unchanged", "gone": "delete"}
    by_app = {c.app: c for c in plan.changes}
    # the new app takes the lowest free slot (18110: 18080..18100 are held)
    assert "+ endpoint: http://127.0.0.1:18110" in by_app["fresh"].diff
    assert by_app["newer"].object == "container llmops-dev-newer-blue (http://127.0.0.1:18080)"
    assert f"+ release: {newer.release}" in by_app["newer"].diff
    assert by_app["same"].diff == ()
    assert by_app["same"].object == "container llmops-dev-same-blue (http://127.0.0.1:18090)"
    # a settings-only change (an override variable) is an update with the fingerprints
    changed = dataclasses.replace(same, env_vars=(*same.env_vars, ("EXTRA", "1")))
    (change,) = target.plan([changed], {"same": live["same"]}).changes
    assert change.kind == "update"
    assert change.diff[0].startswith("~ settings: fingerprint")
    # drift makes an otherwise equal app an update
    drifted = dataclasses.replace(live["same"], drift=("the proxy (pid 7) is not running",))
    (change,) = target.plan([same], {"same": drifted}).changes
    assert change.kind == "update"
    assert change.diff == ("! drift: the proxy (pid 7) is not running",)
    # planning touched nothing: no engine was reached, no state written
    assert not (tmp_path / "dev").exists()


def test_an_engine_that_does_not_answer_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    target = DockerTarget("dev", 18080, tmp_path, engine="unix:///nonexistent/docker.sock")
    with pytest.raises(ExternalError) as caught:
        target.live()
    assert caught.value.exit_code == 2
    assert "\n" not in caught.value.message
    assert caught.value.message.startswith(
        "cannot reach the Docker Engine at unix:///nonexistent/docker.sock"
    )
    desired = _desired(env="dev")
    plan = target.plan([desired], {})
    with pytest.raises(ExternalError) as caught:
        target.apply(plan)
    assert "\n" not in caught.value.message
    assert not (tmp_path / "dev").exists()
    # a TCP address nobody listens on fails the same way
    port = free_port_block(1)
    target = DockerTarget("dev", 18080, tmp_path, engine=f"tcp://127.0.0.1:{port}")
    with pytest.raises(
        ExternalError, match=f"cannot reach the Docker Engine at tcp://127.0.0.1:{port}"
    ):
        target.apply(plan)
    assert not (tmp_path / "dev").exists()


# --- a real engine ------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    bundle: Bundle
    image: str


@dataclass(frozen=True)
class Releases:
    repo: Path
    first: Release
    second: Release
    #: the first release of app ``digest``, a copy of the summarizer under another name
    other: Release


@pytest.fixture(scope="module")
def llmops_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The llmops source as it was when the module started (the wheel in the image)."""
    dest = tmp_path_factory.mktemp("llmops-source")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "llmops", dest / "llmops", ignore=ignore)
    return dest


@pytest.fixture(scope="module")
def releases(
    tmp_path_factory: pytest.TempPathFactory,
    docker_engine: DockerEngine,
    base_image: str,
    llmops_source: Path,
) -> Iterator[Releases]:
    """Two releases of the example summarizer (the second changes a prompt), each built
    into an image by ``llmops build``'s machinery; the images are removed at the end."""
    from support.docker import BASE_PYTHON

    namespace = f"llmops-dtarget-{uuid.uuid4().hex[:8]}"
    repo = tmp_path_factory.mktemp("docker-target") / "repo"
    for name in ("manifests", "environments", "pipelines", "schemas"):
        shutil.copytree(ROOT / name, repo / name)
    (repo / "environments" / "dockertest.yaml").write_text(
        "apiVersion: llmops.dev/v1\nkind: Environment\nmetadata: {name: dockertest}\n"
        f"spec:\n  target: {{kind: docker}}\n  registry: 127.0.0.1:5000/{namespace}\n"
        "  releases: {}\n"
    )
    shutil.copytree(repo / "manifests" / APP, repo / "manifests" / OTHER)
    app_yaml = repo / "manifests" / OTHER / "app.yaml"
    app_yaml.write_text(app_yaml.read_text().replace(f"name: {APP}", f"name: {OTHER}", 1))
    built: list[Release] = []
    try:
        for app, edit in ((APP, ""), (APP, "Answer in plain words.\n"), (OTHER, "")):
            if edit:
                system = repo / "manifests" / app / "prompts" / "system.j2"
                system.write_text(system.read_text() + edit)
            loaded = api.load(repo)
            result = build_release(
                loaded,
                app,
                archive_for(loaded),
                env="dockertest",
                base_image=base_image,
                python=BASE_PYTHON,
                source=llmops_source,
            )
            assert result.image is not None
            built.append(Release(work_bundle(loaded, app), result.image))
        assert built[0].bundle.release_id != built[1].bundle.release_id
        yield Releases(repo, built[0], built[1], built[2])
    finally:
        for release in built:
            docker_engine.remove_image(release.image)


@pytest.fixture(scope="module")
def stub(docker_engine: DockerEngine) -> Iterator[StubServer]:
    """The real stub model on the host, on every interface so containers reach it; it
    answers only the API key the deploying process holds (a secret passed through)."""
    with StubServer(StubConfig(api_key="sk-docker-target"), host="0.0.0.0") as server:
        yield server


@pytest.fixture
def engine(docker_engine: DockerEngine) -> Iterator[ContainerEngine]:
    with ContainerEngine.connect() as connected:
        yield connected


Make = Callable[..., DockerTarget]


@pytest.fixture
def make_target(tmp_path: Path, engine: ContainerEngine, stub: StubServer) -> Iterator[Make]:
    """``make_target()``: a DockerTarget of a fresh environment on a free block of ports,
    its model the stub (given as 127.0.0.1, which the target rewrites). Finalizer: every
    container of those environments removed by label, every proxy killed by PID."""
    made: list[DockerTarget] = []

    def make(**options: Any) -> DockerTarget:
        env = f"dt{uuid.uuid4().hex[:8]}"
        options.setdefault("model_url", f"http://127.0.0.1:{stub.port}/v1")
        options.setdefault("environ", {**os.environ, API_KEY_VAR: "sk-docker-target"})
        target = DockerTarget(
            env, free_port_block(40), tmp_path / "state", engine=engine, **options
        )
        made.append(target)
        return target

    yield make
    for target in made:
        for info in engine.containers({MANAGED_BY_LABEL: MANAGED_BY, ENV_LABEL: target.env}):
            engine.remove(info.id)
        for state in (target.env_dir / "apps").glob(f"*/{PROXY_STATE}"):
            try:
                pid = int(json.loads(state.read_text())["proxy"]["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if process.owns(pid, (PROXY_MODULE, str(state.parent))):
                os.kill(pid, signal.SIGKILL)
                process.wait_exit(pid, 5.0)


def desired_of(target: DockerTarget, release: Release, **changes: Any) -> DesiredApp:
    environment = environment_of(target.env, target={"kind": "docker"})
    desired = desired_app(release.bundle, environment, release.image)
    return dataclasses.replace(desired, **changes) if changes else desired


def invoke(
    port: int, text: str = "The disk of db-7 is full.", app: str = APP
) -> tuple[int, dict[str, Any], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = json.dumps({"inputs": {"text": text}})
        conn.request("POST", f"/v1/apps/{app}/invoke", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        return (
            response.status,
            json.loads(response.read()),
            response.getheader("X-Llmops-Colour") or "",
        )
    finally:
        conn.close()


def stable_port(target: DockerTarget) -> int:
    return target.base_port


def snapshot(engine: ContainerEngine, env: str) -> dict[str, tuple[str, str, int]]:
    """name → (id, started at, restarts) of every container of ``env``."""
    return {
        info.name: (info.id, info.started_at, info.restart_count)
        for info in engine.containers({MANAGED_BY_LABEL: MANAGED_BY, ENV_LABEL: env})
    }


@pytest.mark.docker
def test_deploy_serves_through_the_stable_port_and_reapply_does_nothing(
    releases: Releases, make_target: Make, engine: ContainerEngine, stub: StubServer
) -> None:
    target = make_target()
    desired = desired_of(target, releases.first)
    plan = target.plan([desired], target.live())
    assert [c.kind for c in plan.changes] == ["create"]
    result = target.apply(plan, timeout=90)
    (done,) = result.results
    assert done.outcome == "deployed", done.message
    assert done.colour == "blue"
    stable = stable_port(target)
    assert done.endpoint == f"http://127.0.0.1:{stable}"

    # the app answers through the stable port: the container reached the stub on the
    # host (a rewritten 127.0.0.1 URL) with the key the deploying process held
    status, answer, colour = invoke(stable, "Disk db-7 is full.")
    assert status == 200, answer
    assert answer["release"] == desired.release
    assert "db-7" in json.dumps(answer["output"])
    assert colour == "blue"
    assert stub.stats()["total_requests"] >= 1

    # the container as the engine runs it
    (info,) = engine.containers({MANAGED_BY_LABEL: MANAGED_BY, ENV_LABEL: target.env})
    assert info.name == container_name(target.env, APP, "blue")
    assert info.labels[RELEASE_ANNOTATION] == desired.release
    assert info.labels[FINGERPRINT_ANNOTATION] == desired.fingerprint
    assert info.labels[PORT_LABEL] == str(stable)
    assert info.ports == {8080: stable + 1}
    attrs = engine.attributes(info.id)
    assert attrs is not None
    host = attrs["HostConfig"]
    assert attrs["Config"]["User"] == "10001:10001"
    assert host["ReadonlyRootfs"] is True
    assert "/tmp" in host["Tmpfs"]
    assert host["Memory"] == memory_bytes(desired.memory)
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert host["PortBindings"]["8080/tcp"][0]["HostIp"] == "127.0.0.1"
    assert f"{HOST_ALIAS}:host-gateway" in host["ExtraHosts"]
    env = dict(item.split("=", 1) for item in attrs["Config"]["Env"])
    assert env[ENV_MODEL_URL] == f"http://{HOST_ALIAS}:{stub.port}/v1"
    # the secret reached the container's environment, and nothing llmops wrote
    assert env[API_KEY_VAR] == "sk-docker-target"
    assert "sk-docker-target" not in json.dumps(info.labels)
    for path in target.env_dir.rglob("*"):
        if path.is_file():
            assert b"sk-docker-target" not in path.read_bytes(), path

    # live state from the labels and the proxy
    live = target.live()
    assert live[APP].release == desired.release
    assert live[APP].colour == "blue"
    assert live[APP].ready is True
    assert live[APP].drift == ()

    # idempotent: the plan is a no-op, applying it restarts nothing
    before = snapshot(engine, target.env)
    again = target.plan([desired], live)
    assert again.noop
    result = target.apply(again, timeout=90)
    assert [r.outcome for r in result.results] == ["unchanged"]
    assert result.results[0].release == desired.release
    assert snapshot(engine, target.env) == before
    assert invoke(stable)[0] == 200

    # the engine restarts a container whose app exits (unless-stopped); the stable port
    # serves again once it is back, and nothing counts as drift
    import docker

    client = docker.from_env()
    try:
        client.containers.get(info.id).exec_run(
            ["/opt/llmops/bin/python", "-c", "import os, signal; os.kill(1, signal.SIGTERM)"]
        )
    finally:
        client.close()
    deadline = time.monotonic() + 60
    while True:
        current = engine.inspect(info.id)
        assert current is not None
        if current.restart_count >= 1 and current.up:
            try:
                if invoke(stable)[0] == 200:
                    break
            except (OSError, http.client.HTTPException, ValueError):
                pass
        assert time.monotonic() < deadline, current
        time.sleep(0.2)
    live = target.live()
    assert (live[APP].colour, live[APP].ready, live[APP].drift) == ("blue", True, ())


class Load:
    """Clients invoking the app through the stable port until stopped: half on keep-alive
    connections, half on a new connection per request; every answer is recorded."""

    def __init__(self, port: int, clients: int = 4) -> None:
        self.port = port
        self.clients = clients
        self.stop = threading.Event()
        self.answers: list[tuple[int, str | None, str]] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(i % 2 == 0,), daemon=True)
            for i in range(clients)
        ]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def _run(self, keep_alive: bool) -> None:
        conn: http.client.HTTPConnection | None = None
        body = json.dumps({"inputs": {"text": "Printer on floor 3 is jammed."}})
        headers = {"Content-Type": "application/json"}
        while not self.stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                conn.request("POST", f"/v1/apps/{APP}/invoke", body, headers)
                response = conn.getresponse()
                data = response.read()
                release = json.loads(data).get("release") if response.status == 200 else None
                with self.lock:
                    self.answers.append(
                        (response.status, release, response.getheader("X-Llmops-Colour") or "")
                    )
                    if response.status != 200:
                        self.errors.append(f"{response.status}: {data[:300]!r}")
            except (OSError, http.client.HTTPException, ValueError) as exc:
                with self.lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = None
                continue
            if not keep_alive:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()


@pytest.mark.docker
def test_blue_green_moves_traffic_with_no_failed_request(
    releases: Releases, make_target: Make, engine: ContainerEngine
) -> None:
    target = make_target()
    first = desired_of(target, releases.first)
    (done,) = target.apply(target.plan([first], {}), timeout=90).results
    assert done.outcome == "deployed", done.message
    stable = stable_port(target)
    second = desired_of(target, releases.second)
    plan = target.plan([second], target.live())
    (change,) = plan.changes
    assert change.kind == "update"
    assert change.object.startswith(f"container {container_name(target.env, APP, 'green')} ")
    assert f"- release: {first.release}" in change.diff
    with Load(stable) as load:
        time.sleep(1.0)
        result = target.apply(plan, timeout=90, grace=1.0)
        time.sleep(1.0)
    (done,) = result.results
    assert done.outcome == "deployed", done.message
    assert (done.colour, done.release, done.previous) == ("green", second.release, first.release)
    assert load.errors == []
    releases_seen = [release for _, release, _ in load.answers]
    assert len(releases_seen) > 20
    assert first.release in releases_seen and second.release in releases_seen
    # once switched, never back: the answers are first-release, then second-release
    switched = releases_seen.index(second.release)
    assert set(releases_seen[switched:]) == {second.release}
    assert {c for _, r, c in load.answers if r == second.release} == {"green"}
    # the old colour is gone, the new one serves
    names = [
        i.name for i in engine.containers({MANAGED_BY_LABEL: MANAGED_BY, ENV_LABEL: target.env})
    ]
    assert names == [container_name(target.env, APP, "green")]
    live = target.live()[APP]
    assert (live.colour, live.release, live.ready, live.drift) == (
        "green",
        second.release,
        True,
        (),
    )
    # and back again (a rollback is a deploy of the older release): blue, same port
    (done,) = target.apply(target.plan([first], target.live()), timeout=90).results
    assert (done.outcome, done.colour, done.release) == ("deployed", "blue", first.release)
    status, answer, colour = invoke(stable)
    assert (status, answer["release"], colour) == (200, first.release, "blue")


@pytest.mark.docker
def test_a_failing_container_rolls_back_and_the_old_colour_keeps_serving(
    releases: Releases, make_target: Make, engine: ContainerEngine
) -> None:
    target = make_target()
    first = desired_of(target, releases.first)
    (done,) = target.apply(target.plan([first], {}), timeout=90).results
    assert done.outcome == "deployed", done.message
    stable = stable_port(target)
    before = snapshot(engine, target.env)

    # the second release with too little memory: the container dies at start
    starved = desired_of(target, releases.second, memory="24Mi")
    with Load(stable, clients=2) as load:
        (done,) = target.apply(target.plan([starved], target.live()), timeout=60).results
    assert done.outcome == "rolled-back", done.message
    assert (done.colour, done.release, done.previous) == ("blue", first.release, first.release)
    assert "the green container" in done.message and "before it was ready" in done.message
    assert f"{first.release} keeps serving" in done.message
    assert load.errors == []
    assert {release for _, release, _ in load.answers} == {first.release}
    # the new container is gone, the old one untouched
    assert snapshot(engine, target.env) == before
    live = target.live()[APP]
    assert (live.colour, live.release, live.ready, live.drift) == ("blue", first.release, True, ())

    # a post-deploy check that fails rolls back too, with its reason and the log tail
    checked: list[str] = []

    def verify(desired: DesiredApp, base_url: str) -> VerifyResult:
        checked.append(base_url)
        status, answer, _ = invoke(int(base_url.rsplit(":", 1)[1]))
        assert (status, answer["release"]) == (200, desired.release)
        return VerifyResult(False, "smoke: 1 of 2 cases failed")

    second = desired_of(target, releases.second)
    (done,) = target.apply(target.plan([second], target.live()), verify=verify, timeout=90).results
    assert checked == [f"http://127.0.0.1:{stable + 2}"]
    assert done.outcome == "rolled-back"
    assert "verify failed: smoke: 1 of 2 cases failed" in done.message
    assert f"--- {container_name(target.env, APP, 'green')} log (last lines) ---" in done.message
    assert snapshot(engine, target.env) == before
    assert invoke(stable)[1]["release"] == first.release


@pytest.mark.docker
def test_a_first_deploy_that_fails_leaves_nothing_running(
    releases: Releases, make_target: Make, engine: ContainerEngine
) -> None:
    target = make_target()
    desired = desired_of(target, releases.first, memory="24Mi")
    (done,) = target.apply(target.plan([desired], {}), timeout=60).results
    assert done.outcome == "failed"
    assert "before it was ready" in done.message
    assert snapshot(engine, target.env) == {}
    assert target.live() == {}
    assert process.port_free(stable_port(target))
    # an image the engine does not have (and cannot pull) fails the same way, at once
    missing = dataclasses.replace(desired, image="127.0.0.1:1/nothing/here:v1", memory="256Mi")
    (done,) = target.apply(target.plan([missing], {}), timeout=60).results
    assert done.outcome == "failed"
    assert "127.0.0.1:1/nothing/here:v1 is not in the engine and cannot be pulled" in done.message
    assert snapshot(engine, target.env) == {}


@pytest.mark.docker
def test_prune_removes_apps_no_longer_desired_and_drift_is_healed(
    releases: Releases, make_target: Make, engine: ContainerEngine
) -> None:
    target = make_target()
    summarizer = desired_of(target, releases.first)
    other = desired_of(target, releases.other)
    result = target.apply(target.plan([summarizer, other], {}), timeout=90)
    assert [r.outcome for r in result.results] == ["deployed", "deployed"], result
    ports = {r.app: r.endpoint for r in result.results}
    # slots in name order: digest first, then the summarizer
    port, other_port = target.base_port + 10, target.base_port
    assert ports == {APP: f"http://127.0.0.1:{port}", OTHER: f"http://127.0.0.1:{other_port}"}

    # drift: the proxy of the summarizer is killed, the other app's container removed
    proxy_state = json.loads((target.app_dir(APP) / PROXY_STATE).read_text())
    os.kill(int(proxy_state["proxy"]["pid"]), signal.SIGKILL)
    engine.remove(container_name(target.env, OTHER, "blue"))
    time.sleep(0.5)
    live = target.live()
    assert live[APP].ready is False
    assert any("proxy" in item and "not running" in item for item in live[APP].drift)
    assert any("is gone" in item for item in live[OTHER].drift)
    plan = target.plan([summarizer, other], live)
    assert [c.kind for c in plan.changes] == ["update", "update"]
    result = target.apply(plan, timeout=90)
    assert [r.outcome for r in result.results] == ["deployed", "deployed"], result
    live = target.live()
    assert all(app.ready and not app.drift for app in live.values()), live
    assert invoke(port)[0] == 200 and invoke(other_port, app=OTHER)[0] == 200

    # prune: only the summarizer is desired now
    plan = target.plan([summarizer], target.live())
    assert [(c.app, c.kind) for c in plan.changes] == [
        (APP, "unchanged"),
        (OTHER, "delete"),
    ]
    before = snapshot(engine, target.env)
    result = target.apply(plan, timeout=90)
    by_app = {r.app: r for r in result.results}
    assert by_app[OTHER].outcome == "pruned"
    assert by_app[OTHER].previous == other.release
    assert by_app[APP].outcome == "unchanged"
    after = snapshot(engine, target.env)
    assert list(after) == [container_name(target.env, APP, "green")]
    assert (
        after[container_name(target.env, APP, "green")]
        == before[container_name(target.env, APP, "green")]
    )
    assert set(target.live()) == {APP}
    assert process.port_free(other_port)
    assert not target.app_dir(OTHER).exists()
    assert invoke(port)[0] == 200
    # teardown of the whole environment
    assert [d.outcome for d in target.stop_all()] == ["pruned"]
    assert snapshot(engine, target.env) == {}
    assert process.port_free(port)
