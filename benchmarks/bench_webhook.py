"""Benchmark: commit → applied through the controller's webhook, local target.

    python benchmarks/bench_webhook.py [--runs 7] [--base-port 28500]

Setup (not timed): a scratch repository scaffolded by ``llmops init`` (one app, ``bot``;
environments on the local target with ports from ``--base-port``, 28000–29000 so nothing
collides with other runs on the machine), committed; the stub model as a subprocess with
two scripted replies so the dev gate (``smoke``, minPassRate 0.9) passes; ``llmops
controller --repo REPO --no-leader-election --env dev --model-url STUB --interval 3600
--port 0`` as a subprocess with ``LLMOPS_WEBHOOK_SECRET`` set; its startup pass settles
(dev runs release R0, answered on the app's stable port).

Each run (timed): ``git commit`` of a prompt-only change (a line added to the system
prompt, so a new release), a GitHub ``push`` event signed with the secret POSTed to
``/webhook/github``, then ``POST /v1/apps/bot/invoke`` on dev's stable port every 20 ms
(a new connection each time) until the reply names the new release. The time is from
just before ``git commit`` to that reply. Target: ≤ 5 s (issue 7).

Where the time goes is read from the controller's JSON log lines (the webhook's ``http``
line, ``pass done`` with its duration) and from the ledger entries the pass appends
(``released``, ``evaluated`` = the gate, ``deployed`` = the apply with its post-deploy
verify), each as seconds after the commit. Ledger times have millisecond resolution on
the wall clock. Results go to benchmarks/results/webhook.json, with the load average.

Every process started here is stopped by its PID; the local target's processes by
``LocalTarget.stop_all`` (``llmops up --down``'s own call).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from llmops import api  # noqa: E402

APP = "bot"
ENVS = ("dev", "test", "prod")
SLOT_SPAN = 3  # stable, blue, green ports of one app (llmops.deploy.local)
POLL_S = 0.020
STUB_RULES = """rules:
  - {match: '(?i)capital of france', reply: 'Paris is the capital of France.'}
  - {match: '(?i)what can you help', reply: 'I answer short questions about anything.'}
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def port_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now (as uvicorn does: SO_REUSEADDR, so
    connections of an earlier run still in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_ports(start: int) -> dict[str, int]:
    """A base port per environment, from ``start`` up in steps of 100, all of whose first
    slot's ports are free now (the benchmark deploys one app per environment at most)."""
    chosen: dict[str, int] = {}
    base = start
    for env in ENVS:
        while not all(port_free(base + i) for i in range(SLOT_SPAN)):
            base += 100
        if base + SLOT_SPAN > 29000:
            raise SystemExit(f"no free ports left in 28000-29000 from {start}")
        chosen[env] = base
        base += 100
    return chosen


def any_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_repo(root: Path, ports: dict[str, int]) -> None:
    api.init(root, APP)
    for env, base in ports.items():
        path = root / "environments" / f"{env}.yaml"
        text = path.read_text()
        old = "    basePort: "
        start = text.index(old) + len(old)
        end = text.index("\n", start)
        path.write_text(text[:start] + str(base) + text[end:])
    git(root, "init", "--quiet", "-b", "main")
    git(root, "config", "user.name", "Bench")
    git(root, "config", "user.email", "bench@example.com")
    git(root, "config", "commit.gpgsign", "false")
    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", "scaffold")


def http_json(
    port: int, method: str, path: str, body: bytes | None = None,
    headers: dict[str, str] | None = None, timeout: float = 5.0,
) -> tuple[int, Any]:
    """One request on a new connection; (status, parsed JSON or the raw text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
        reply = conn.getresponse()
        data = reply.read()
        try:
            return reply.status, json.loads(data)
        except ValueError:
            return reply.status, data.decode("utf-8", "replace")
    finally:
        conn.close()


def served_release(port: int) -> str | None:
    """The release dev's stable port answers an invoke with; None while it does not."""
    body = json.dumps({"inputs": {"question": "What is the capital of France?"}}).encode()
    try:
        status, reply = http_json(
            port, "POST", f"/v1/apps/{APP}/invoke", body,
            {"Content-Type": "application/json"}, timeout=2.0,
        )
    except OSError:
        return None
    if status != 200 or not isinstance(reply, dict):
        return None
    release = reply.get("release")
    return release if isinstance(release, str) else None


def wait_for(check: Any, timeout: float, what: str, poll: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout:g} s")
        time.sleep(poll)


class Controller:
    """``llmops controller`` as a subprocess; its JSON log lines with the wall time read."""

    def __init__(self, repo: Path, model_url: str, secret: str, log_path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmops", "controller", "--repo", str(repo),
             "--no-leader-election", "--env", "dev", "--model-url", model_url,
             "--interval", "3600", "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "LLMOPS_WEBHOOK_SECRET": secret},
        )
        self.lines: list[dict[str, Any]] = []
        self.raw = log_path.open("w")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.raw.write(line)
            self.raw.flush()
            if line.startswith("{"):
                try:
                    self.lines.append(json.loads(line))
                except ValueError:
                    continue

    def find(self, msg: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            x for x in list(self.lines)
            if x.get("msg") == msg and all(x.get(k) == v for k, v in fields.items())
        ]

    def url(self) -> str | None:
        started = self.find("controller started")
        if not started and self.proc.poll() is not None:
            raise SystemExit("the controller exited; its log:\n" + self.raw.name)
        return str(started[0]["url"]) if started else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)
        self.raw.close()


def stop_process(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def epoch(ts: str) -> float:
    """Seconds since the epoch of an ISO time ending in Z (logs and ledger)."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def signed_push(secret: str, head: str, before: str, changed: str) -> tuple[bytes, dict[str, str]]:
    payload = {
        "ref": "refs/heads/main",
        "before": before,
        "after": head,
        "repository": {"default_branch": "main", "full_name": "bench/llm-apps"},
        "head_commit": {"id": head},
        "commits": [{"id": head, "added": [], "removed": [], "modified": [changed]}],
    }
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": secrets.token_hex(8),
        "X-Hub-Signature-256": signature,
    }
    return body, headers


def expected_release(root: Path) -> str:
    """The release id of the work tree's app (content-addressed: what the commit holds)."""
    from llmops.manifests.repository import load_repo
    from llmops.ops.release import work_bundle

    return work_bundle(load_repo(root, prefix=""), APP).release_id


def target_milestones(root: Path, release: str, wall0: float) -> dict[str, float]:
    """Seconds after the commit at which dev's local target spawned the new release's
    backend (supervisor log), the backend logged ``serving``, first answered /healthz, and
    the supervisor switched the stable port to it."""
    logs = root / ".llmops" / "targets" / "dev" / "apps" / APP / "logs"
    found: dict[str, float] = {}

    def lines(path: Path) -> list[dict[str, Any]]:
        out = []
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    for path in sorted(logs.glob("*.log*")) if logs.is_dir() else []:
        serving = False
        for x in lines(path):
            when = x.get("time") or x.get("ts")
            if not isinstance(when, str):
                continue
            at = round(epoch(when) - wall0, 3)
            if path.name.startswith("supervisor"):
                if x.get("release") == release and x.get("message") == "backend started":
                    found.setdefault("backend_spawned", at)
                elif x.get("release") == release and x.get("message") == "switched":
                    found.setdefault("switched", at)
            elif x.get("msg") == "serving" and x.get("release") == release:
                serving = True
                found.setdefault("backend_serving_logged", at)
            elif serving and x.get("path") == "/healthz" and x.get("status") == 200:
                found.setdefault("backend_healthy", at)
                serving = False
    order = ["backend_spawned", "backend_serving_logged", "backend_healthy", "switched"]
    return {k: found[k] for k in order if k in found}


def ledger_since(root: Path, seq: int) -> list[Any]:
    from llmops.archive import DirArchive

    return [e for e in DirArchive(root / ".llmops" / "archive").entries() if e.seq > seq]


def last_seq(root: Path) -> int:
    from llmops.archive import DirArchive

    entries = DirArchive(root / ".llmops" / "archive").entries()
    return entries[-1].seq if entries else -1


def one_run(
    index: int, root: Path, controller: Controller, controller_port: int, dev_port: int,
    secret: str, previous: str,
) -> dict[str, Any]:
    prompt = root / "manifests" / APP / "prompts" / "system.j2"
    prompt.write_text(prompt.read_text() + f"Be brief (revision {index}).\n")
    release = expected_release(root)
    assert release != previous, "the prompt change did not make a new release"
    before = git(root, "rev-parse", "HEAD")
    seq = last_seq(root)
    seen_webhook_lines = len(controller.find("pass done", trigger="webhook"))

    wall0 = time.time()
    t0 = time.perf_counter()
    git(root, "commit", "--quiet", "-am", f"prompt revision {index}")
    committed = time.perf_counter() - t0
    head = git(root, "rev-parse", "HEAD")
    body, headers = signed_push(secret, head, before, f"manifests/{APP}/prompts/system.j2")
    status, reply = http_json(controller_port, "POST", "/webhook/github", body, headers)
    posted = time.perf_counter() - t0
    if status != 202:
        raise SystemExit(f"run {index}: the webhook answered {status}: {reply}")
    others: set[str] = set()
    deadline = t0 + 120.0
    while True:
        served = served_release(dev_port)
        if served == release:
            total = time.perf_counter() - t0
            break
        if served is not None and served != previous:
            others.add(served)
        if time.perf_counter() > deadline:
            raise SystemExit(f"run {index}: dev never served {release} (saw {others or previous})")
        time.sleep(POLL_S)

    # where the time went: the pass's log lines and ledger entries (not timed)
    wait_for(
        lambda: len(controller.find("pass done", trigger="webhook")) > seen_webhook_lines,
        60, f"run {index}: the webhook pass to finish",
    )
    done = controller.find("pass done", trigger="webhook")[-1]
    hooks = [
        x for x in controller.find("http", path="/webhook/github") if epoch(x["ts"]) >= wall0 - 0.01
    ]
    entries = ledger_since(root, seq)
    phases: dict[str, float] = {}
    for entry in entries:
        name = entry.event if entry.env is None else f"{entry.event}[{entry.env}]"
        phases.setdefault(name, round(epoch(entry.time) - wall0, 3))
    target = target_milestones(root, release, wall0)
    done_at = epoch(done["ts"]) - wall0
    pass_s = float(done["duration_s"])
    result = {
        "run": index,
        "release": release,
        "commit": head,
        "total_s": round(total, 3),
        "git_commit_s": round(committed, 3),
        "webhook_accepted_s": round(posted, 3),
        "webhook_logged_s": round(epoch(hooks[0]["ts"]) - wall0, 3) if hooks else None,
        "pass_start_s": round(done_at - pass_s, 3),
        "pass_s": pass_s,
        "pass_done_s": round(done_at, 3),
        "pass_commit_matches": done.get("commit") == head,
        "pass_environments": done.get("environments"),
        "ledger_s": phases,
        "local_target_s": target,
        "other_releases_seen": sorted(others),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--base-port", type=int, default=28500, help="first port tried (28000-29000)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    if not 28000 <= args.base_port < 29000:
        parser.error("--base-port must be within 28000-29000")
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="llmops-bench-webhook-"))
    root = tmp / "repo"
    ports = free_base_ports(args.base_port)
    dev_port = ports["dev"]  # the app's stable port: slot 0 of dev's base port
    make_repo(root, ports)
    (tmp / "stub-rules.yaml").write_text(STUB_RULES)
    secret = secrets.token_hex(16)

    stub_port = any_free_port()
    stub = subprocess.Popen(
        [sys.executable, "-m", "llmops", "stub-model", "--port", str(stub_port),
         "--rules", str(tmp / "stub-rules.yaml"), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=(tmp / "stub.log").open("w"),
    )
    controller: Controller | None = None
    runs: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    try:
        def stub_up() -> bool:
            try:
                return http_json(stub_port, "GET", "/healthz", timeout=1)[0] == 200
            except OSError:
                return False

        wait_for(stub_up, 30, "the stub model to answer /healthz")
        model_url = f"http://127.0.0.1:{stub_port}/v1"
        started = time.perf_counter()
        controller = Controller(root, model_url, secret, tmp / "controller.log")
        url = wait_for(controller.url, 60, "the controller to start")
        controller_port = int(url.rsplit(":", 1)[1].split("/")[0])
        startup = wait_for(
            lambda: controller.find("pass done", trigger="startup")
            or controller.find("pass failed"),
            180, "the startup pass",
        )[0]
        if startup["msg"] != "pass done" or startup["environments"].get("dev") != "ok":
            raise SystemExit(f"the startup pass did not settle dev: {startup}")
        r0 = expected_release(root)
        served = wait_for(lambda: served_release(dev_port), 30, "dev to answer")
        if served != r0:
            raise SystemExit(f"dev serves {served}, not the work tree's release {r0}")
        settle = time.perf_counter() - started
        print(f"settled: dev runs {r0} on :{dev_port} ({settle:.1f} s from controller start)", flush=True)

        previous = r0
        for index in range(1, args.runs + 1):
            run = one_run(index, root, controller, controller_port, dev_port, secret, previous)
            runs.append(run)
            previous = run["release"]
            ledger = ", ".join(
                f"{k} {v:.2f}" for k, v in {**run["ledger_s"], **run["local_target_s"]}.items()
            )
            print(
                f"run {index}: {run['total_s']:.3f} s  (webhook 202 at {run['webhook_accepted_s']:.3f}, "
                f"pass {run['pass_start_s']:.2f}-{run['pass_done_s']:.2f} s; {ledger})",
                flush=True,
            )
        totals = [r["total_s"] for r in runs]
        load_after = os.getloadavg()
        results = {
            "target_s": 5.0,
            "runs": len(runs),
            "median_s": round(statistics.median(totals), 3),
            "min_s": min(totals),
            "max_s": max(totals),
            "times_s": totals,
            "settle_s": round(settle, 3),
            "poll_interval_s": POLL_S,
            "ports": ports,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
            "cpus": os.cpu_count(),
            "breakdown_median_s": breakdown(runs),
            "per_run": runs,
        }
        print(
            f"commit -> applied via webhook: median {results['median_s']:.3f} s "
            f"(min {results['min_s']:.3f}, max {results['max_s']:.3f}) over {len(runs)} runs; "
            f"target 5 s; load {load_before[0]:.2f} -> {load_after[0]:.2f}",
            flush=True,
        )
        print("median breakdown (s after the commit): " + json.dumps(results["breakdown_median_s"]))
    finally:
        if controller is not None:
            controller.stop()
        stop_process(stub)
        stop_local_targets(root)
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
    if results:
        out = ROOT / "benchmarks" / "results" / "webhook.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}")


def breakdown(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Medians of each milestone (seconds after the commit) over the runs that have it."""
    keys = ["git_commit_s", "webhook_accepted_s", "pass_start_s", "pass_done_s", "total_s"]
    out: dict[str, float] = {}
    for key in keys:
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key] = round(statistics.median(values), 3)
    for group in ("ledger_s", "local_target_s"):
        for name in sorted({k for r in runs for k in r[group]}):
            values = [r[group][name] for r in runs if name in r[group]]
            out[f"{group[:-2]}:{name}"] = round(statistics.median(values), 3)
    ordered = dict(sorted(out.items(), key=lambda kv: kv[1]))
    ordered["pass_s"] = round(statistics.median(r["pass_s"] for r in runs), 3)
    return ordered


def stop_local_targets(root: Path) -> None:
    """Stop every local-target process the controller started (``llmops up --down``)."""
    if not root.exists():
        return
    try:
        from llmops.ops.up import down

        stopped = down(root).stopped
        print(f"stopped the local targets' processes: {', '.join(stopped) or 'none'}")
    except Exception as exc:  # report, then fall back to the CLI
        print(f"stopping the local targets in-process failed ({exc}); trying llmops up --down")
        subprocess.run([sys.executable, "-m", "llmops", "up", str(root), "--down"], check=False)


if __name__ == "__main__":
    main()
