"""Benchmark: reconcile passes over a large repository (real git, the real dir archive).

    python benchmarks/bench_reconcile.py [--apps 300] [--runs 7] [--rounds 3] [--out F]

A generated repository of N apps and three environments (dev ← head, test and prod by
commit) is converged first; then it measures

* a no-op pass (nothing changed): decided by content hashes before anything is loaded
  (the memo of the last settled pass: commit, ledger tip, live fingerprints) — target
  ≤ 1 s at 300 apps × 3 environments;
* the same no-op pass walking everything (no memo) in a new world, as
  ``llmops reconcile --once`` starts: load the manifests, compute every app's release,
  compare with the ledger and the live fingerprints — for comparison;
* the walk without the memo in the controller's world, kept from pass to pass: apps
  whose files did not change are not checked again, apps whose inputs did not change
  are not prepared again, the ledger is read from where the last pass stopped;
* passes in the controller's world after a commit that changes 0, 1 and 10 apps
  (``--rounds`` each, median): each changed app is released, gated, deployed to dev,
  promoted (a git commit) and deployed to test and prod; reported with the time spent
  inside the promotions (``llmops.reconcile.promotion.promote_now``: plan, gate, git
  commit). Run it with ``--apps 100`` too to see what grows with the total.

The deploy target is a recording target (in memory: it keeps what it was asked to run
and reports it as live), and the gate is a recorded verdict (a passing GateResult and a
small report, archived as evidence), both in tests/support/recording.py: this measures
the reconciler, not model calls or process start-up. Results go to
benchmarks/results/reconcile.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from genrepo import generate  # noqa: E402

sys.path.insert(0, str(ROOT))
from llmops.archive import DirArchive  # noqa: E402
from llmops.deploy.target import Target  # noqa: E402
from llmops.domain.models.environment import Target as TargetSpec  # noqa: E402
from llmops.ops import reconcile as rec  # noqa: E402
from tests.support.recording import RecordingTarget, recorded_gate  # noqa: E402

PIPELINE = """apiVersion: llmops.dev/v1
kind: Pipeline
metadata: {name: default}
spec:
  archive: {type: dir, path: .llmops/archive}
  stages:
    - {env: dev, source: head, gate: {suites: [smoke]}}
    - {env: test, promotion: commit, gate: {suites: [smoke]}}
    - {env: prod, promotion: commit, gate: {suites: [smoke]}}
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def make(root: Path, apps: int) -> None:
    generate(root, apps, cases=2)
    for env in ("dev", "test", "prod"):
        text = (
            "apiVersion: llmops.dev/v1\nkind: Environment\nmetadata:\n"
            f"  name: {env}\nspec:\n  target: {{kind: local}}\n  releases: {{}}\n"
        )
        (root / "environments" / f"{env}.yaml").write_text(text)
    (root / "pipelines" / "default.yaml").write_text(PIPELINE)
    (root / ".gitignore").write_text(".llmops/\n")
    git(root, "init", "--quiet", "-b", "main")
    git(root, "config", "user.name", "Bench")
    git(root, "config", "user.email", "bench@example.com")
    git(root, "config", "commit.gpgsign", "false")
    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", "generated")


def change(root: Path, count: int, round_: int) -> None:
    for index in range(count):
        prompt = root / "manifests" / f"app-{index:04d}" / "prompts" / "user.j2"
        prompt.write_text(prompt.read_text() + f"{{# change {round_} #}}\n")
    git(root, "commit", "--quiet", "-am", f"change {count} apps ({round_})")


def seed(
    root: Path, archive: DirArchive, options: rec.ReconcileOptions, world: rec.ReconcileWorld
) -> None:
    """Converge quickly: a pass over dev, then test and prod pinned in one commit with
    their (recorded) gate evidence, then a pass that deploys them (2 × N promotions one by one are
    2 × N git commits: minutes at 300 apps, and not what is measured)."""
    from dataclasses import replace

    from llmops.manifests.repository import load_repo
    from llmops.ops.evidence import record_gate_evidence
    from llmops.ops.release import work_bundle

    first = rec.reconcile_pass(root, replace(options, env="dev"), world)
    assert first.ok, first.to_json()
    repo = load_repo(root, prefix="")
    stages = repo.pipelines["default"].pipeline.spec.stages
    releases = {app: work_bundle(repo, app).release_id for app in sorted(repo.apps)}
    for stage in stages[1:]:
        for app, release in releases.items():
            result, report = recorded_gate(repo, archive, work_bundle(repo, app), stage, None)
            record_gate_evidence(archive, app, release, stage, result, report)
        pins = "".join(f"    {app}: {release}\n" for app, release in releases.items())
        (root / "environments" / f"{stage.env}.yaml").write_text(
            "apiVersion: llmops.dev/v1\nkind: Environment\nmetadata:\n"
            f"  name: {stage.env}\nspec:\n  target: {{kind: local}}\n  releases:\n{pins}"
        )
    git(root, "commit", "--quiet", "-am", "pin test and prod")
    for stage in stages[1:]:
        for app, release in releases.items():
            archive.append(
                "promoted", app, release=release, env=stage.env, data={"state": "committed"}
            )
    second = rec.reconcile_pass(root, options, world)
    assert second.ok, second.to_json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=300)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="passes per changed-app count")
    parser.add_argument("--out", default="reconcile.json", help="file under benchmarks/results")
    args = parser.parse_args()
    targets: dict[str, RecordingTarget] = {}

    def factory(env: str, spec: TargetSpec, archive: Any, state_root: Path) -> Target:
        return targets.setdefault(env, RecordingTarget(env))

    promote_seconds = [0.0]
    real_promote = rec.promote_now

    def timed_promote(*a: Any, **k: Any) -> Any:
        started = time.perf_counter()
        try:
            return real_promote(*a, **k)
        finally:
            promote_seconds[0] += time.perf_counter() - started

    rec.promote_now = timed_promote  # type: ignore[assignment]
    results: dict[str, Any] = {"apps": args.apps, "environments": 3, "runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="llmops-bench-reconcile-") as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        make(root, args.apps)
        archive = DirArchive(root / ".llmops" / "archive")

        def world(memo: bool = True) -> rec.ReconcileWorld:
            """A new world: what ``llmops reconcile --once`` starts from."""
            return rec.ReconcileWorld(
                archive=archive, target_factory=factory, gate=recorded_gate, use_memo=memo
            )

        # the controller's world: kept from pass to pass (load cache, steady apps, ledger)
        warm = world()

        def warm_world(memo: bool = True) -> rec.ReconcileWorld:
            warm.use_memo = memo
            return warm

        options = rec.ReconcileOptions(model_url="http://127.0.0.1:9/v1")
        started = time.perf_counter()
        seed(root, archive, options, warm_world())
        converge = time.perf_counter() - started
        print(f"converged {args.apps} apps x 3 envs in {converge:.1f} s", flush=True)
        results["converge_s"] = converge
        settle = rec.reconcile_pass(root, options, warm_world())
        assert settle.noop, settle.work[:5]

        def measure(label: str, memo: bool, make: Any = world) -> None:
            times = []
            for _ in range(args.runs):
                ledger = len(archive.entries())
                t0 = time.perf_counter()
                result = rec.reconcile_pass(root, options, make(memo))
                times.append(time.perf_counter() - t0)
                assert result.noop and result.shortcut == memo, (result.work[:3], result.shortcut)
                assert len(archive.entries()) == ledger
            results[label] = {
                "median_s": statistics.median(times),
                "min_s": min(times),
                "max_s": max(times),
            }
            print(
                f"{label}: median {statistics.median(times):.3f} s (min {min(times):.3f})",
                flush=True,
            )

        measure("noop_pass_memo", True)
        measure("noop_pass_full_walk", False)
        measure("noop_pass_warm_walk", False, warm_world)
        results["noop_pass_memo"]["target_s"] = 1.0

        round_ = 0
        for count in (0, 1, 10):
            samples: list[dict[str, float]] = []
            for _ in range(args.rounds):
                round_ += 1
                if count:
                    change(root, count, round_)
                else:
                    git(root, "commit", "--quiet", "--allow-empty", "-m", "no app changes")
                applies = sum(t.applies for t in targets.values())
                promote_seconds[0] = 0.0
                t0 = time.perf_counter()
                result = rec.reconcile_pass(root, options, warm_world())
                took = time.perf_counter() - t0
                assert result.ok, result.to_json()
                deployed = sum(1 for w in result.work if w.startswith("deployed"))
                assert deployed == 3 * count, (deployed, count)
                samples.append(
                    {
                        "pass_s": took,
                        "in_promote_s": promote_seconds[0],
                        "effects": len(result.work),
                        "applies": sum(t.applies for t in targets.values()) - applies,
                    }
                )
                again = rec.reconcile_pass(root, options, warm_world())
                assert again.noop and again.shortcut
            median = statistics.median(s["pass_s"] for s in samples)
            in_promote = statistics.median(s["in_promote_s"] for s in samples)
            results[f"changed_{count}"] = {
                "pass_s": median,
                "passes_s": [s["pass_s"] for s in samples],
                "in_promote_s": in_promote,
                "outside_promote_s": median - in_promote,
                "effects": samples[-1]["effects"],
                "applies": samples[-1]["applies"],
            }
            print(
                f"{count:>2} changed apps: pass {median:.2f} s median of {len(samples)} "
                f"({in_promote:.2f} s in promote), {samples[-1]['effects']} effects",
                flush=True,
            )
    out = ROOT / "benchmarks" / "results" / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
