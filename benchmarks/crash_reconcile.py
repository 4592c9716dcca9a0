"""Crash harness: SIGKILL ``llmops reconcile --once`` at random points of a pass, N times.

    python benchmarks/crash_reconcile.py --kills 200

A git copy of the example (with eval suites the stub model answers; see
tests/reconcile/recon_helpers.py) runs on the real local target and the real stub
model, prod promoted by commit. Each round commits a change to one app, starts a pass
(``python -m llmops reconcile REPO --once``) and SIGKILLs it after a random delay within
the length of a full pass; then

* ``llmops archive verify`` must pass (the ledger chain and every object intact);
* one more pass, not killed, must converge: every environment runs the work tree's
  release of every app, test and prod pin it in git, every app is Ready, and the pass
  after that is a no-op.

Killing the reconciler leaves its children (git, the detached supervisors) running, as
a crash of the reconciler would. Results go to benchmarks/results/crash_reconcile.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reconcile"))

from recon_helpers import make_repo, pin, start_stub, stop_targets  # noqa: E402

from llmops.manifests.repository import load_repo  # noqa: E402
from llmops.ops.release import work_bundle  # noqa: E402


def llmops(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "llmops", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def commit_change(repo: Path, round_: int) -> None:
    app = ("support-bot", "summarizer")[round_ % 2]
    prompt = repo / "manifests" / app / "prompts" / "system.j2"
    prompt.write_text(prompt.read_text().split("{# round")[0] + f"{{# round {round_} #}}\n")
    subprocess.run(["git", "commit", "--quiet", "-am", f"round {round_}"], cwd=repo, check=True)


def converged(repo: Path, result: dict[str, Any]) -> list[str]:
    """What differs from the state every pass must end in, as messages (none: converged)."""
    problems = []
    loaded = load_repo(repo, prefix="")
    heads = {app: work_bundle(loaded, app).release_id for app in loaded.apps}
    for stage in result["stages"]:
        for app in stage["apps"]:
            if app["phase"] != "Ready" or app["live"] != heads[app["app"]]:
                problems.append(f"{stage['env']}/{app['app']}: {app['phase']}, runs {app['live']}")
    for env in ("test", "prod"):
        for app, release in heads.items():
            if pin(repo, env, app) != release:
                problems.append(f"{env} pins {pin(repo, env, app)} for {app}, head is {release}")
    if sorted(s["env"] for s in result["stages"]) != ["dev", "prod", "test"]:
        problems.append(f"stages: {[s['env'] for s in result['stages']]}")
    return problems


OUT = ROOT / "benchmarks" / "results" / "crash_reconcile.json"


def _summary(
    kills: int, rounds: int, failures: list[str], pass_s: float, points: list[float], started: float
) -> dict[str, Any]:
    return {
        "kills_asked": kills,
        "rounds_done": rounds,
        "failures": failures,
        "pass_s": pass_s,
        "kill_points_s": {"min": min(points, default=0), "max": max(points, default=0)},
        "seconds": time.monotonic() - started,
    }


def _write(summary: dict[str, Any]) -> None:
    """Written after every round, so a run cut short still reports what it did."""
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(summary, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    stub = start_stub()
    failures: list[str] = []
    points: list[float] = []
    rounds, pass_s = 0, 0.0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="llmops-crash-reconcile-") as tmp:
        repo = make_repo(Path(tmp) / "repo")
        pipeline = repo / "pipelines" / "default.yaml"
        pipeline.write_text(
            pipeline.read_text().replace(
                "promotion: pull-request\n      approval: required\n", "promotion: commit\n"
            )
        )
        subprocess.run(["git", "commit", "--quiet", "-am", "prod by commit"], cwd=repo, check=True)
        base = ["reconcile", str(repo), "--once", "--model-url", stub.url, "--timeout", "60"]
        try:
            first = llmops(*base, "-o", "json")
            assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
            assert not converged(repo, json.loads(first.stdout)), "the first pass did not converge"
            # how long a pass with one changed app takes: kills land within that
            commit_change(repo, 0)
            t0 = time.monotonic()
            timed = llmops(*base, "-o", "json")
            pass_s = time.monotonic() - t0
            assert not converged(repo, json.loads(timed.stdout)), "a pass did not converge"
            for round_ in range(1, args.kills + 1):
                commit_change(repo, round_)
                delay = rng.uniform(0.05, pass_s * 1.1)
                points.append(delay)
                proc = subprocess.Popen(
                    [sys.executable, "-m", "llmops", *base],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env={k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"},
                )
                time.sleep(delay)
                finished = proc.poll() is not None
                if not finished:
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                verify = llmops("archive", "verify", "--path", str(repo))
                if verify.returncode != 0:
                    failures.append(
                        f"round {round_}: archive verify: {verify.stdout}{verify.stderr}"
                    )
                again = llmops(*base, "-o", "json")
                try:
                    result = json.loads(again.stdout)
                    problems = converged(repo, result)
                except ValueError:
                    problems = [f"no JSON: {again.stderr[-500:]}"]
                if problems:
                    failures.append(
                        f"round {round_} (killed at {delay:.2f}s): " + "; ".join(problems)
                    )
                quiet = llmops(*base, "-o", "json")
                if quiet.returncode != 0 or not json.loads(quiet.stdout)["noop"]:
                    failures.append(f"round {round_}: the pass after convergence did work")
                rounds = round_
                _write(_summary(args.kills, rounds, failures, pass_s, points, started))
                status = (
                    "ok"
                    if not failures or not failures[-1].startswith(f"round {round_}")
                    else "FAILED"
                )
                print(
                    f"round {round_}: killed after {delay:.2f}s{' (had finished)' if finished else ''}: {status}",
                    flush=True,
                )
        finally:
            stop_targets(repo)
            stub.stop()
    _write(_summary(args.kills, rounds, failures, pass_s, points, started))
    bad = len({f.split(":")[0] for f in failures})
    print(f"{rounds - bad} of {rounds} rounds converged; {len(failures)} failures; wrote {OUT}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
