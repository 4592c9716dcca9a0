"""``llmops controller`` and ``llmops controller manifests`` as a user runs them: real
processes, real signals, the Kubernetes API test server over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner
from support.kube import closed_port

from llmops import api
from llmops.cli.controller import outcome_of, reconciler_pass
from llmops.cli.main import cli
from llmops.domain.errors import ExternalError, SourceError
from llmops.reconcile.result import AppResult, PassResult, StageResult, StepOutcome

ROOT = Path(__file__).resolve().parents[2]
PASSFNS = ROOT / "tests" / "controller"
NS = "llm-test"


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# -- manifests ----------------------------------------------------------------------------


def test_manifests_print_a_yaml_stream_that_validates_strictly() -> None:
    result = run_cli(
        "controller", "manifests", "--repo", "https://git.example/acme/llm-apps.git",
        "--namespace", "llmops", "--target-namespace", "llm-dev", "--target-namespace", "llm-prod",
        "--image", "registry.local/llmops/controller:1.2.3", "--replicas", "3",
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("---\n")
    documents = list(yaml.safe_load_all(result.output))
    version = kubernetes_validate.utils.latest_version()
    for doc in documents:
        kubernetes_validate.validate(doc, version, strict=True)
    kinds = [d["kind"] for d in documents]
    assert kinds == [
        "Namespace", "Namespace", "Namespace", "ServiceAccount", "Role", "RoleBinding",
        "Role", "RoleBinding", "Role", "RoleBinding", "Deployment", "Service",
    ]
    deployment = documents[-2]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.local/llmops/controller:1.2.3"
    )
    assert "*" not in result.output


def test_manifests_read_the_target_namespaces_from_a_checkout(tmp_path: Path) -> None:
    api.init(tmp_path, "bot")
    for env in ("test", "prod"):
        path = tmp_path / "environments" / f"{env}.yaml"
        text = path.read_text()
        start = text.index("  target:")
        end = text.index("  # Pins")
        path.write_text(text[:start] + f"  target:\n    kind: kubernetes\n    namespace: llm-{env}\n" + text[end:])
    result = run_cli("controller", "manifests", "--repo", "https://git.example/x.git", "--path", str(tmp_path))
    assert result.exit_code == 0, result.output
    roles = [d for d in yaml.safe_load_all(result.output) if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["llm-prod", "llm-test", "llmops-system"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "needs --repo"),
        (("--repo", "u", "--target-namespace", "Bad_NS"), "not a valid name"),
        (("--repo", "u", "--path", "/nonexistent"), "--target-namespace"),
    ],
)
def test_manifests_usage_errors_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "llmops", "controller", "manifests", *args],
        capture_output=True, text=True, cwd="/",
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_controller_without_a_repo_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "llmops", "controller", "--no-leader-election"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "needs --repo" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unusable_kubeconfig_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    proc = subprocess.run(
        [sys.executable, "-m", "llmops", "controller", "--repo", str(tmp_path),
         "--kubeconfig", str(tmp_path / "kubeconfig"), "--port", "0"],
        capture_output=True, text=True, env={**os.environ, "KUBERNETES_SERVICE_HOST": ""},
    )
    assert proc.returncode == 2, proc.stderr
    assert "no usable Kubernetes configuration" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- the running process ------------------------------------------------------------------


class Process:
    """``llmops controller`` in a subprocess; its JSON log lines collected as they come."""

    def __init__(self, *args: str, pass_log: Path, env: dict[str, str] | None = None) -> None:
        environ = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(PASSFNS), str(ROOT)]),
            "LLMOPS_TEST_PASS_LOG": str(pass_log),
            "LLMOPS_WEBHOOK_SECRET": "never-print-me",
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmops", "controller", "--pass-fn", "passfns:slow",
             "--host", "127.0.0.1", "--port", "0", *args],
            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environ,
        )
        self.lines: list[str] = []
        self.url: str | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if '"controller started"' in line:
                self.url = json.loads(line)["url"]

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines if line.startswith("{")]

    def wait_started(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while self.url is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("controller did not start:\n" + "".join(self.lines))
            time.sleep(0.05)
        return self.url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def passes(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def wait_until(check: Any, timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.05)


def lease_args(kube_server: Any, identity: str) -> list[str]:
    return [
        "--kubeconfig", str(kube_server.kubeconfig), "--lease-namespace", NS,
        "--identity", identity, "--lease-duration", "2", "--renew-deadline", "1.2",
        "--retry-period", "0.2", "--interval", "3600",
    ]


def test_sigterm_finishes_the_pass_in_flight_and_releases_the_lease(
    kube_server: Any, tmp_path: Path, processes: list[Process]
) -> None:
    log = tmp_path / "passes.jsonl"
    process = Process(*lease_args(kube_server, "p1"), pass_log=log)
    processes.append(process)
    process.wait_started()
    wait_until(lambda: any(p["event"] == "start" for p in passes(log)), what="a pass starts")
    process.proc.send_signal(signal.SIGTERM)
    signalled = time.time()
    assert process.proc.wait(20) == 0, "".join(process.lines)
    events = passes(log)
    assert [p["event"] for p in events] == ["start", "end"]
    assert events[1]["t"] > signalled  # the pass was in flight at SIGTERM and finished
    lease = kube_server.get("Lease", "llmops-controller", NS)
    assert lease["spec"]["holderIdentity"] == ""
    messages = [line["msg"] for line in process.logs()]
    assert messages.index("signal received") < messages.index("released the lease")
    assert messages[-1] == "controller stopped"
    output = "".join(process.lines)
    assert "never-print-me" not in output and "Traceback" not in output


def test_sigkill_of_the_leader_hands_over_after_the_lease_expires(
    kube_server: Any, tmp_path: Path, processes: list[Process]
) -> None:
    log = tmp_path / "passes.jsonl"
    env = {"LLMOPS_TEST_PASS_SECONDS": "0.05"}
    first = Process(*lease_args(kube_server, "p1"), pass_log=log, env=env)
    processes.append(first)
    first.wait_started()
    wait_until(lambda: len(passes(log)) >= 2, what="p1's first pass")
    second = Process(*lease_args(kube_server, "p2"), pass_log=log, env=env)
    processes.append(second)
    second.wait_started()
    time.sleep(1.0)
    assert {p["pid"] for p in passes(log)} == {first.proc.pid}
    first.proc.kill()
    first.proc.wait(10)
    killed = time.time()
    wait_until(lambda: any(p["pid"] == second.proc.pid for p in passes(log)), what="p2 takes over")
    took = next(p["t"] for p in passes(log) if p["pid"] == second.proc.pid)
    assert took - killed >= 2.0 - 1.2 - 0.2  # after the lease (2 s from p1's last renewal)
    assert kube_server.get("Lease", "llmops-controller", NS)["spec"]["holderIdentity"] == "p2"


# -- the wiring to the reconciler ---------------------------------------------------------


def stage(env: str, *apps: AppResult, error: str | None = None) -> StageResult:
    return StageResult(env, "local", tuple(apps), error=error)


def app(name: str, env: str, *steps: StepOutcome, error: str | None = None, desired: str = "r2",
        live: str = "r1") -> AppResult:
    return AppResult(name, env, desired, live, "Ready", tuple(steps), error=error)


def result(*stages: StageResult, error: str | None = None) -> PassResult:
    return PassResult("/repo", "abc", False, "2025-01-01T00:00:00Z", 0.1, tuple(stages), error=error)


def test_reconciler_results_become_the_controllers_outcome() -> None:
    outcome = outcome_of([
        result(
            stage("dev", app("bot", "dev", StepOutcome("apply", "done", "Applied"))),
            stage(
                "test",
                app("bot", "test", StepOutcome("promote", "done", "Committed", "bot@… committed")),
                app("faq", "test", StepOutcome("apply", "failed", "RolledBack", "verify failed"),
                    StepOutcome("rollback", "done", "PinRolledBack", "pin back")),
                app("bad", "test", StepOutcome("release", "failed", "Error", "model endpoint refused")),
            ),
            stage("prod", app("bot", "prod", StepOutcome("gate", "refused", "GateFailed", "0.5 < 0.95"))),
            stage("edge", error="cluster unreachable"),
        )
    ])
    assert [(e.env, e.ok) for e in outcome.environments] == [
        ("dev", True), ("test", False), ("prod", True), ("edge", False)
    ]
    assert [(p.app, p.env, p.release) for p in outcome.promotions] == [("bot", "test", "r2")]
    assert [(r.app, r.env, r.release, r.bad_release) for r in outcome.rollbacks] == [
        ("faq", "test", "r1", "r2")
    ]
    assert [(g.app, g.env) for g in outcome.gate_failures] == [("bot", "prod")]
    assert [(f.app, f.env, f.message) for f in outcome.app_failures] == [
        ("bad", "test", "model endpoint refused")
    ]
    assert outcome.commit == "abc"


def test_a_reconciler_result_with_an_error_fails_the_whole_pass() -> None:
    with pytest.raises(ExternalError, match="cannot fetch"):
        outcome_of([result(error="cannot fetch origin")])


def test_a_missing_local_repository_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such directory"):
        reconciler_pass(str(tmp_path / "missing"), branch=None, workdir=None)


# -- end to end with the real reconciler --------------------------------------------------


def test_the_controller_runs_the_reconciler_on_start_and_on_a_push(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    api.init(repo, "bot")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "init"], check=True)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    stub_port = closed_port()
    # every model call fails, so the gate fails and nothing is deployed (no processes left)
    stub = subprocess.Popen([sys.executable, "-m", "llmops", "stub-model", "--port", str(stub_port),
                             "--fault-rate", "1", "--fault-kinds", "malformed"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stub_up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{stub_port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    # the gate must meet a stub that answers (with faults), not a port still closed
    wait_until(stub_up, timeout=30, what="the stub model")
    controller = subprocess.Popen(
        [sys.executable, "-m", "llmops", "controller", "--repo", str(repo), "--no-leader-election",
         "--env", "dev", "--model-url", f"http://127.0.0.1:{stub_port}/v1", "--interval", "3600",
         "--host", "127.0.0.1", "--port", "0"],
        stderr=subprocess.PIPE, text=True,
        env={**os.environ, "LLMOPS_WEBHOOK_SECRET": "e2e-secret"},
    )
    lines: list[dict[str, Any]] = []

    def read() -> None:
        assert controller.stderr is not None
        for line in controller.stderr:
            if line.startswith("{"):
                lines.append(json.loads(line))

    threading.Thread(target=read, daemon=True).start()

    def done(trigger: str) -> list[dict[str, Any]]:
        return [x for x in lines if x["msg"] == "pass done" and x["trigger"] == trigger]

    try:
        wait_until(lambda: bool(done("startup")), timeout=60, what="the startup pass")
        assert done("startup")[0]["commit"] == head
        assert "dev" in done("startup")[0]["environments"]
        url = next(x["url"] for x in lines if x["msg"] == "controller started")
        body = json.dumps({"ref": "refs/heads/main", "after": head,
                           "repository": {"default_branch": "main"}}).encode()
        signature = "sha256=" + hmac.new(b"e2e-secret", body, hashlib.sha256).hexdigest()
        reply = httpx.post(url + "/webhook/github", content=body, timeout=10, headers={
            "X-GitHub-Event": "push", "X-Hub-Signature-256": signature})
        assert reply.status_code == 202, reply.text
        wait_until(lambda: bool(done("webhook")), timeout=30, what="the webhook pass")
        metrics = httpx.get(url + "/metrics", timeout=10).text
        assert 'llmops_controller_passes_total{trigger="webhook",result="error"}' not in metrics
        assert 'llmops_controller_passes_total{trigger="webhook"' in metrics
        assert 'llmops_controller_gate_failures_total{app="bot",environment="dev"} 1' in metrics
        assert not list(repo.glob("**/state.json")), "something was deployed"
    finally:
        controller.send_signal(signal.SIGTERM)
        try:
            assert controller.wait(30) == 0
        finally:
            if controller.poll() is None:
                controller.kill()
            stub.terminate()
            stub.wait(10)


def test_the_reconciler_pass_leaves_apps_in_backoff_alone_and_stops_when_asked(
    tmp_path: Path,
) -> None:
    from llmops.controller.types import PassRequest
    from tests.reconcile.recon_helpers import archive_of, make_repo

    repo = make_repo(tmp_path / "repo")
    # no model answers: every case of a gate errs, so the gate fails
    run = reconciler_pass(
        str(repo), branch=None, workdir=None, model_url=f"http://127.0.0.1:{closed_port()}/v1"
    )
    dev = frozenset({"dev"})

    stopped = run(PassRequest(environments=dev, should_stop=lambda: True))
    assert stopped.environments == () and stopped.gate_failures == ()
    assert not (repo / ".llmops" / "archive").exists()

    left_alone = run(PassRequest(environments=dev, exclude=frozenset({"summarizer"})))
    assert {g.app for g in left_alone.gate_failures} == {"support-bot"}
    assert {e.app for e in archive_of(repo).entries()} == {"support-bot"}

    alone = run(PassRequest(apps=frozenset({"summarizer"}), environments=dev))
    assert {g.app for g in alone.gate_failures} == {"summarizer"}
    assert {e.app for e in archive_of(repo).entries()} == {"support-bot", "summarizer"}
