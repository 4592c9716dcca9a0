"""The local deploy target with real processes: releases of the example app served by
``llmops serve --bundle`` behind the supervisor, the stub model on 127.0.0.1, real HTTP.

Pure parts first (ports, environments, plans), then deploys: blue/green with a client
calling throughout, rollbacks (not ready, port taken, failed verify), crash restarts,
prune, idempotence, secrets and state that outlives the deploying process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from local_kit import free_port, free_port_block, kill_recorded

from llmops import api
from llmops.adapters import process
from llmops.archive import DirArchive
from llmops.deploy.local import (
    SLOT_WIDTH,
    LocalTarget,
    assign_ports,
    backend_argv,
    backend_environment,
    parse_state,
    state_root_for,
)
from llmops.deploy.target import VerifyResult
from llmops.domain.deploy import ENV_API_KEY_VAR, DesiredApp, LiveApp, SecretEnv
from llmops.domain.errors import UsageError
from llmops.ops.release import work_bundle
from llmops.releases.bundle import Bundle
from llmops.stub.config import StubConfig
from llmops.stub.runner import StubServer

EXAMPLE = Path(__file__).resolve().parents[2]
KEY = "sk-local-target-test-key-98765"


# --- pure -----------------------------------------------------------------------------


def test_ports_follow_sorted_order_and_stay_put() -> None:
    assert assign_ports(["b", "a", "c"], {}, 18080) == {"a": 18080, "b": 18090, "c": 18100}
    # a deployed app keeps its port; a new app takes the lowest free slot
    assert assign_ports(["a", "b", "c"], {"b": 18090, "c": 18100}, 18080) == {
        "a": 18080,
        "b": 18090,
        "c": 18100,
    }
    assert assign_ports(["a", "zz"], {"zz": 18080}, 18080) == {"zz": 18080, "a": 18090}
    # a port that is not a slot of this basePort (the base changed) is reassigned
    assert assign_ports(["a"], {"a": 18085}, 18080) == {"a": 18080}
    with pytest.raises(UsageError, match="basePort"):
        assign_ports(["a", "b"], {}, 65520)


def desired(bundle: Bundle, model_url: str | None = None, **changes: Any) -> DesiredApp:
    env_vars = [("LLMOPS_ENVIRONMENT", "dev")]
    if model_url is not None:
        env_vars.append(("LLMOPS_MODEL_URL", model_url))
    app = DesiredApp(
        app=bundle.app,
        env="dev",
        release=bundle.release_id,
        image=None,
        replicas=1,
        port=8080,
        cpu="250m",
        memory="256Mi",
        env_vars=tuple(sorted(env_vars)),
    )
    return replace(app, **changes)


def fake(app: str = "a", digest: str = "1" * 64, **changes: Any) -> DesiredApp:
    base = DesiredApp(app, "dev", f"{app}@sha256:{digest}", None, 1, 8080, "250m", "256Mi")
    return replace(base, **changes)


def test_backend_environment_is_curated_and_secrets_come_by_name() -> None:
    app = fake(
        env_vars=(("LLMOPS_ENVIRONMENT", "dev"), ("LLMOPS_MODEL_URL", "http://m/v1"), ("X", "1")),
        secret_env=(
            SecretEnv(name="OPENAI_API_KEY", from_env="DEPLOY_KEY"),
            SecretEnv(
                name="LLMOPS_SECRET_OPENAI_API_KEY", secret_name="openai", secret_key="api-key"
            ),
            SecretEnv(name="", file="/run/key"),
            SecretEnv(name="FILE_KEY", file="/run/other"),
            SecretEnv(name="MISSING", from_env="NOPE"),
        ),
    )
    environ = {
        "PATH": "/bin",
        "HOME": "/h",
        "DEPLOY_KEY": "k1",
        "LLMOPS_SECRET_OPENAI_API_KEY": "k2",
        "UNRELATED_TOKEN": "no",
    }
    env, notes = backend_environment(
        app,
        environ,
        extra={"X": "0", "EXTRA": "e"},
        read_file=lambda path: {"/run/other": "k3\n"}[path],
    )
    assert env == {
        "PATH": "/bin",
        "HOME": "/h",
        "EXTRA": "e",
        "X": "1",
        "LLMOPS_ENVIRONMENT": "dev",
        "LLMOPS_MODEL_URL": "http://m/v1",
        "OPENAI_API_KEY": "k1",
        "LLMOPS_SECRET_OPENAI_API_KEY": "k2",
        "FILE_KEY": "k3",
    }
    assert notes == ("MISSING: NOPE is not set in the deploying environment",)
    # the target's model URL wins; the variable LLMOPS_MODEL_API_KEY_ENV names passes through
    app = fake(env_vars=((ENV_API_KEY_VAR, "OTHER_KEY"),))
    env, notes = backend_environment(app, {"OTHER_KEY": "k4"}, model_url="http://stub/v1")
    assert env["OTHER_KEY"] == "k4" and env["LLMOPS_MODEL_URL"] == "http://stub/v1"
    assert backend_environment(app, {})[1] == ("OTHER_KEY: not set in the deploying environment",)


def test_backend_argv_serves_the_bundle_on_loopback() -> None:
    argv = backend_argv("/py", "a", Path("/s/r.json"), 18081, "http://m/v1")
    assert argv == [
        "/py", "-m", "llmops", "serve", "a", "--bundle", "/s/r.json", "--host", "127.0.0.1",
        "--port", "18081", "--log-level", "info", "--model-url", "http://m/v1",
    ]  # fmt: skip
    assert "--model-url" not in backend_argv("/py", "a", Path("/s/r.json"), 18081, None)


def test_state_files_that_are_not_ours_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a local target state file"):
        parse_state({"app": "a"}, tmp_path)
    with pytest.raises(ValueError, match="unknown colour"):
        parse_state(
            {"app": "a", "env": "dev", "supervisor": {"pid": 1, "port": 1, "control": "c"},
             "backends": {"red": {}}},
            tmp_path,
        )  # fmt: skip


def _live(app: DesiredApp, port: int, **changes: Any) -> LiveApp:
    base = LiveApp(
        app.app, "dev", app.release, app.fingerprint, "blue", True, f"http://127.0.0.1:{port}"
    )
    return replace(base, **changes)


def test_plan_is_pure_and_says_why(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path, "dev", 18080, DirArchive(tmp_path / "archive"))
    a, b, c = fake("a"), fake("b"), fake("c")
    b2 = fake("b", "2" * 64)
    c2 = replace(c, env_vars=(("X", "1"),))
    live = {
        "b": _live(b, 18090),
        "c": _live(c, 18100),
        "d": _live(fake("d"), 18110),
        "e": _live(fake("e"), 18120, ready=False),
    }
    plan = target.plan([a, b2, c2, fake("e")], live)
    kinds = [(ch.kind, ch.app) for ch in plan.changes]
    assert kinds == [
        ("create", "a"), ("update", "b"), ("update", "c"), ("update", "e"), ("delete", "d"),
    ]  # fmt: skip
    by_app = {ch.app: ch for ch in plan.changes}
    # the new app takes the first free slot, not the one its name would sort into
    assert by_app["a"].diff == (f"+ release: {a.release}", "+ endpoint: http://127.0.0.1:18080")
    assert by_app["b"].diff == (f"- release: {b.release}", f"+ release: {b2.release}")
    assert by_app["c"].diff[0].startswith("~ settings: fingerprint")
    assert by_app["e"].diff == ("! not ready: http://127.0.0.1:18120/healthz does not answer 200",)
    assert by_app["d"].object == "process d (http://127.0.0.1:18110)"
    assert not plan.noop

    drifted = {"b": _live(b, 18090, drift=("the supervisor (pid 9) is not running",), ready=False)}
    (change,) = target.plan([b], drifted).changes
    assert change.kind == "update"
    assert change.diff == ("! drift: the supervisor (pid 9) is not running",)
    assert target.plan([b], {"b": _live(b, 18090)}).noop

    with pytest.raises(UsageError, match="desired in prod"):
        target.plan([replace(a, env="prod")], {})
    with pytest.raises(UsageError, match="twice"):
        target.plan([a, a], {})


# --- real processes -------------------------------------------------------------------


@dataclass(frozen=True)
class Releases:
    archive: DirArchive
    summarizer: Bundle
    summarizer2: Bundle
    support_bot: Bundle


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    """Two releases of the example's summarizer (the second changes its system prompt)
    and one of support-bot, archived in a DirArchive."""
    root = tmp_path_factory.mktemp("example")
    repo = root / "repo"
    for part in ("manifests", "environments", "pipelines"):
        shutil.copytree(EXAMPLE / part, repo / part)
    archive = DirArchive(root / "archive")
    first = work_bundle(api.load(repo), "summarizer")
    bot = work_bundle(api.load(repo), "support-bot")
    system = repo / "manifests/summarizer/prompts/system.j2"
    system.write_text(system.read_text() + "Be brief.\n")
    second = work_bundle(api.load(repo), "summarizer")
    assert first.release_id != second.release_id
    for bundle in (first, second, bot):
        archive.put(bundle.data)
    return Releases(archive, first, second, bot)


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(StubConfig()) as server:
        yield server


@pytest.fixture
def make_target(tmp_path: Path, releases: Releases) -> Iterator[Callable[..., LocalTarget]]:
    """``make_target(**kwargs)``: a LocalTarget on a fresh block of free ports; every
    process it starts is stopped (then killed by PID) after the test."""
    made: list[LocalTarget] = []

    def make(**kwargs: Any) -> LocalTarget:
        kwargs.setdefault("environ", {"PATH": os.environ.get("PATH", "")})
        root = state_root_for(tmp_path / f"repo{len(made)}")
        target = LocalTarget(root, "dev", free_port_block(40), releases.archive, **kwargs)
        made.append(target)
        return target

    yield make
    for target in made:
        try:
            target.stop_all()
        finally:
            kill_recorded(target.state_root)


def invoke(port: int, text: str = "hello", client: httpx.Client | None = None) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/v1/apps/summarizer/invoke"
    body = {"inputs": {"text": text}}
    response = (client or httpx).post(url, json=body, timeout=30)  # type: ignore[attr-defined]
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def pids(target: LocalTarget, app: str = "summarizer") -> dict[str, Any]:
    state = target.status()[app].state
    assert state is not None
    return {
        "supervisor": state.supervisor_pid,
        **{colour: b.pid for colour, b in state.backends.items()},
    }


def apply(target: LocalTarget, apps: list[DesiredApp], **kwargs: Any) -> Any:
    plan = target.plan(apps, target.live())
    kwargs.setdefault("timeout", 60)
    return plan, target.apply(plan, **kwargs)


@pytest.mark.slow
def test_blue_green_release_with_zero_failed_requests(
    make_target: Callable[..., LocalTarget], releases: Releases, stub: StubServer
) -> None:
    target = make_target()
    first = desired(releases.summarizer, stub.url)
    checked: list[tuple[str, str]] = []

    def verify(app: DesiredApp, base_url: str) -> VerifyResult:
        ready = httpx.get(f"{base_url}/readyz", timeout=10).json()
        checked.append((base_url, ready["apps"][app.app]["release"]))
        return VerifyResult(ready["status"] == "ready")

    plan, result = apply(target, [first], verify=verify)
    assert [c.kind for c in plan.changes] == ["create"]
    (deployed,) = result.results
    stable = target.base_port
    assert result.ok and deployed.outcome == "deployed" and deployed.colour == "blue"
    assert deployed.endpoint == f"http://127.0.0.1:{stable}"
    assert checked == [(f"http://127.0.0.1:{stable + 1}", first.release)]
    answer = invoke(stable)
    assert answer["release"] == first.release and "hello" in answer["output"]
    live = target.live()["summarizer"]
    assert (live.release, live.fingerprint, live.colour, live.ready, live.drift) == (
        first.release, first.fingerprint, "blue", True, (),
    )  # fmt: skip

    # applying again changes nothing and restarts nothing
    before = pids(target)
    plan, result = apply(target, [first])
    assert plan.noop and [r.outcome for r in result.results] == ["unchanged"]
    assert pids(target) == before

    # the next release goes green while two clients keep calling the stable port
    failures: list[str] = []
    seen: dict[bool, list[str]] = {True: [], False: []}
    stop = threading.Event()

    def client(keep_alive: bool) -> None:
        limits = httpx.Limits(max_keepalive_connections=1 if keep_alive else 0)
        with httpx.Client(limits=limits) as http:
            while not stop.is_set():
                try:
                    seen[keep_alive].append(invoke(stable, client=http)["release"])
                except (AssertionError, httpx.HTTPError) as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=client, args=(k,)) for k in (True, False)]
    for thread in threads:
        thread.start()
    try:
        second = desired(releases.summarizer2, stub.url)
        _, result = apply(target, [second], grace=1.0)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    (deployed,) = result.results
    assert (deployed.outcome, deployed.colour, deployed.previous) == (
        "deployed", "green", first.release,
    )  # fmt: skip
    assert failures == []
    for answers in seen.values():  # each client: the old release, then only the new one
        switch = answers.index(second.release)
        assert switch > 0 and set(answers[:switch]) == {first.release}
        assert set(answers[switch:]) == {second.release}
    assert not process.pid_alive(before["blue"])
    state = target.status()["summarizer"].state
    assert state is not None and set(state.backends) == {"green"}
    # only the serving release's bundle is kept
    assert sorted(p.name for p in (target.env_dir / "releases").iterdir()) == [
        f"{releases.summarizer2.digest}.json"
    ]


@pytest.mark.slow
def test_a_release_that_is_never_ready_rolls_back(
    make_target: Callable[..., LocalTarget], releases: Releases, stub: StubServer
) -> None:
    target = make_target()
    first = desired(releases.summarizer, stub.url)
    assert apply(target, [first])[1].ok
    before = pids(target)
    dead_model = f"http://127.0.0.1:{free_port()}/v1"
    second = desired(releases.summarizer2, dead_model)
    # long enough for `llmops serve` to start on a busy machine; /readyz never turns 200
    _, result = apply(target, [second], timeout=15)
    (rolled,) = result.results
    assert rolled.outcome == "rolled-back" and not result.ok
    assert rolled.release == first.release and rolled.colour == "blue"
    assert "green backend was not ready within 15s" in rolled.message
    assert "/readyz answered 503" in rolled.message
    assert "--- green log (last lines) ---" in rolled.message
    assert f"{first.release} keeps serving" in rolled.message
    assert invoke(target.base_port)["release"] == first.release
    assert pids(target) == before  # green is gone, blue untouched
    assert target.plan([first], target.live()).noop


@pytest.mark.slow
def test_a_taken_port_or_a_failed_verify_rolls_back(
    make_target: Callable[..., LocalTarget], releases: Releases, stub: StubServer
) -> None:
    target = make_target()
    first = desired(releases.summarizer, stub.url)
    second = desired(releases.summarizer2, stub.url)
    assert apply(target, [first])[1].ok
    stable = target.base_port

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", stable + 2))
        squatter.listen()
        (rolled,) = apply(target, [second])[1].results
    assert rolled.outcome == "rolled-back"
    assert f"port {stable + 2} is in use by another process" in rolled.message
    assert invoke(stable)["release"] == first.release

    seen: list[str] = []

    def failing(app: DesiredApp, base_url: str) -> VerifyResult:
        seen.append(httpx.get(f"{base_url}/readyz", timeout=10).json()["apps"][app.app]["release"])
        return VerifyResult(False, "smoke: 2 of 5 cases failed")

    (rolled,) = apply(target, [second], verify=failing)[1].results
    assert rolled.outcome == "rolled-back"
    assert "verify failed: smoke: 2 of 5 cases failed" in rolled.message
    assert seen == [second.release]  # verify saw the new colour, not the stable port
    assert invoke(stable)["release"] == first.release
    live = target.live()["summarizer"]
    assert live.release == first.release and live.drift == ()


@pytest.mark.slow
def test_a_killed_backend_is_restarted_by_the_supervisor(
    make_target: Callable[..., LocalTarget], releases: Releases, stub: StubServer
) -> None:
    target = make_target()
    first = desired(releases.summarizer, stub.url)
    assert apply(target, [first])[1].ok
    before = pids(target)
    os.kill(before["blue"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        state = target.status()["summarizer"].state
        assert state is not None
        blue = state.backends["blue"]
        if blue.restarts == 1 and blue.status == "running" and target.live()["summarizer"].ready:
            break
        assert time.monotonic() < deadline, "the backend was not restarted"
        time.sleep(0.2)
    assert blue.pid != before["blue"] and blue.exit_code == -signal.SIGKILL
    assert invoke(target.base_port)["release"] == first.release
    assert target.plan([first], target.live()).noop
    assert pids(target)["supervisor"] == before["supervisor"]


@pytest.mark.slow
def test_a_colour_left_running_by_an_interrupted_apply_is_retired_alone(
    make_target: Callable[..., LocalTarget], releases: Releases, stub: StubServer
) -> None:
    target = make_target()
    first = desired(releases.summarizer, stub.url)
    assert apply(target, [first])[1].ok
    before = pids(target)
    # what a deploying process killed between starting green and switching leaves behind
    state = target.status()["summarizer"].state
    assert state is not None
    control = process.ControlClient(state.control)
    spec = {
        "port": target.base_port + 2,
        "argv": [sys.executable, "-c", "import time\nwhile True: time.sleep(1)"],
        "env": {"PATH": os.environ["PATH"]},
        "release": first.release,
        "fingerprint": first.fingerprint,
        "bundle": str(target.release_file(first.digest)),
    }
    assert control.request("PUT", "/backends/green", spec)[0] == 200
    green = pids(target)["green"]
    live = target.live()["summarizer"]
    assert live.ready and live.colour == "blue"
    assert live.drift == (
        f"the green backend ({first.release}) runs but does not serve (an interrupted apply?)",
    )
    plan, result = apply(target, [first])
    assert [c.kind for c in plan.changes] == ["update"]
    (done,) = result.results
    assert done.outcome == "deployed" and done.colour == "blue"
    assert "stopped the leftover green backend" in done.message
    assert not process.pid_alive(green)
    assert pids(target) == before  # blue was not restarted
    assert target.plan([first], target.live()).noop


@pytest.mark.slow
def test_apps_deploy_independently_and_an_app_no_longer_desired_is_pruned(
    make_target: Callable[..., LocalTarget], releases: Releases, stub: StubServer
) -> None:
    target = make_target()
    summarizer = desired(releases.summarizer, stub.url)
    bot = desired(releases.support_bot, stub.url)
    unknown = replace(summarizer, release=f"summarizer@sha256:{'0' * 64}")
    base = target.base_port
    # one app failing (its release is not in the archive) does not stop the other
    _, result = apply(target, [bot, unknown])
    outcomes = {r.app: r.outcome for r in result.results}
    assert outcomes == {"support-bot": "deployed", "summarizer": "failed"}
    assert "is not in the archive" in result.results[1].message
    assert not (target.app_dir("summarizer") / "state.json").exists()
    assert "summarizer" not in target.live()

    _, result = apply(target, [summarizer, bot])
    assert {r.app: r.outcome for r in result.results} == {
        "summarizer": "deployed", "support-bot": "unchanged",
    }  # fmt: skip
    live = target.live()
    # support-bot kept the slot it got first (its sorted place then, after summarizer)
    assert live["support-bot"].endpoint == f"http://127.0.0.1:{base + SLOT_WIDTH}"
    assert live["summarizer"].endpoint == f"http://127.0.0.1:{base}"
    kept = pids(target, "summarizer")
    gone = pids(target, "support-bot")

    plan, result = apply(target, [summarizer])
    assert [(c.kind, c.app) for c in plan.changes] == [
        ("unchanged", "summarizer"), ("delete", "support-bot"),
    ]  # fmt: skip
    pruned = {r.app: r for r in result.results}["support-bot"]
    assert pruned.outcome == "pruned" and pruned.previous == bot.release
    assert all(not process.pid_alive(pid) for pid in gone.values())
    assert process.port_free(base + SLOT_WIDTH) and process.port_free(base + SLOT_WIDTH + 1)
    assert mentioning(str(target.app_dir("support-bot"))) == []
    assert set(target.live()) == {"summarizer"}
    assert pids(target, "summarizer") == kept


@pytest.mark.slow
def test_a_first_deploy_that_cannot_listen_leaves_nothing_running(
    make_target: Callable[..., LocalTarget], releases: Releases, stub: StubServer
) -> None:
    target = make_target()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", target.base_port))
        squatter.listen()
        (failed,) = apply(target, [desired(releases.summarizer, stub.url)])[1].results
    assert failed.outcome == "failed"
    assert "the supervisor of summarizer exited at start" in failed.message
    assert "cannot listen" in failed.message
    assert target.live() == {}
    assert mentioning(str(target.env_dir)) == []


def mentioning(text: str) -> list[int]:
    """PIDs of live processes with ``text`` in an argument (a state directory, a bundle)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and process.pid_alive(int(entry.name)):
            argv = process.cmdline(int(entry.name)) or []
            if any(text in arg for arg in argv):
                found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_a_killed_supervisor_is_drift_and_apply_recovers(
    make_target: Callable[..., LocalTarget], releases: Releases, stub: StubServer
) -> None:
    target = make_target()
    first = desired(releases.summarizer, stub.url)
    assert apply(target, [first])[1].ok
    before = pids(target)
    os.kill(before["supervisor"], signal.SIGKILL)
    assert process.wait_exit(before["supervisor"], 10)
    if sys.platform.startswith("linux"):  # the backend follows its supervisor
        assert process.wait_exit(before["blue"], 20)
    live = target.live()["summarizer"]
    assert not live.ready
    assert f"the supervisor (pid {before['supervisor']}) is not running" in live.drift
    (change,) = target.plan([first], target.live()).changes
    assert change.kind == "update" and change.diff[0].startswith("! drift: the supervisor")
    (deployed,) = apply(target, [first])[1].results
    assert deployed.outcome == "deployed" and deployed.previous == first.release
    assert invoke(target.base_port)["release"] == first.release
    assert target.plan([first], target.live()).noop


@pytest.mark.slow
def test_secrets_pass_through_by_name_and_stay_out_of_files(
    make_target: Callable[..., LocalTarget], releases: Releases
) -> None:
    with StubServer(StubConfig(api_key=KEY)) as keyed:
        app = desired(
            releases.summarizer,
            keyed.url,
            secret_env=(SecretEnv(name="OPENAI_API_KEY", from_env="DEPLOY_OPENAI_KEY"),),
        )

        # a smoke check through the new colour: the stub answers 401 without the key
        def smoke(app: DesiredApp, base_url: str) -> VerifyResult:
            body = {"inputs": {"text": "ping"}}
            answer = httpx.post(f"{base_url}/v1/apps/{app.app}/invoke", json=body, timeout=30)
            return VerifyResult(answer.status_code == 200, f"invoke answered {answer.status_code}")

        keyless = make_target()
        (failed,) = apply(keyless, [app], verify=smoke)[1].results
        assert failed.outcome == "failed"
        assert "verify failed: invoke answered" in failed.message
        assert "OPENAI_API_KEY: DEPLOY_OPENAI_KEY is not set in the deploying" in failed.message
        assert keyless.live() == {}

        target = make_target(environ={"PATH": os.environ["PATH"], "DEPLOY_OPENAI_KEY": KEY})
        (deployed,) = apply(target, [app], verify=smoke)[1].results
        assert deployed.outcome == "deployed", deployed.message
        assert invoke(target.base_port)["release"] == app.release
        blue = pids(target)["blue"]
        environ = Path(f"/proc/{blue}/environ").read_bytes().split(b"\0")
        assert f"OPENAI_API_KEY={KEY}".encode() in environ
        assert not any(v.startswith(b"DEPLOY_OPENAI_KEY=") for v in environ)
        for path in target.state_root.rglob("*"):
            if path.is_file():
                assert KEY.encode() not in path.read_bytes(), path
        target.stop_all()


_CLI = """
import json, sys
from pathlib import Path
from llmops.archive import DirArchive
from llmops.deploy.local import LocalTarget
from llmops.domain.deploy import DesiredApp
root, base, archive, desired = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
desired["env_vars"] = tuple(tuple(p) for p in desired["env_vars"])
app = DesiredApp(**desired)
target = LocalTarget(Path(root), "dev", base, DirArchive(Path(archive)))
result = target.apply(target.plan([app], target.live()), timeout=60)
print(json.dumps([r.outcome for r in result.results]))
"""


@pytest.mark.slow
def test_what_runs_outlives_the_deploying_process(
    make_target: Callable[..., LocalTarget], releases: Releases, stub: StubServer
) -> None:
    target = make_target()
    app = desired(releases.summarizer, stub.url)
    spec = {
        "app": app.app, "env": app.env, "release": app.release, "image": None, "replicas": 1,
        "port": 8080, "cpu": "250m", "memory": "256Mi", "env_vars": app.env_vars,
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", _CLI, str(target.state_root), str(target.base_port),
         str(releases.archive.root), json.dumps(spec)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["deployed"]
    live = target.live()["summarizer"]
    assert live.ready and live.release == app.release and live.drift == ()
    assert invoke(target.base_port)["release"] == app.release
    assert target.plan([app], target.live()).noop
    running = pids(target)
    (pruned,) = target.stop_all()
    assert pruned.outcome == "pruned"
    assert all(process.wait_exit(pid, 10) for pid in running.values())
    assert target.live() == {}
