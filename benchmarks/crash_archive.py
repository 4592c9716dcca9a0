"""Crash harness: SIGKILL a writer at random points of `release create` and ledger
appends, N times; after each kill `archive verify` must pass and a rerun must converge.

    python benchmarks/crash_archive.py --kills 200

Used by tests/archive/test_crash.py with a small N; run it with 200 for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WRITER = r"""
import sys, itertools, time
from pathlib import Path
from llmops import api
from llmops.archive import DirArchive
repo = Path(sys.argv[1])
store = DirArchive(repo / ".llmops" / "archive")
system = repo / "manifests" / "summarizer" / "prompts" / "system.j2"
base = system.read_text().split("{# revision")[0]


def step(i):
    system.write_text(base + f"{{# revision {i} #}}\n")
    api.release_create(repo, "summarizer")
    digest = store.put(f"report {i}".encode())
    store.append("evaluated", "summarizer", env="dev", evidence={"report": digest})


first = time.time_ns()
start = time.perf_counter()
step(first)
print(f"ready {time.perf_counter() - start:.4f}", flush=True)
for i in itertools.count(first + 1):
    step(i)
"""


def run(kills: int, seed: int, max_delay_ms: int) -> dict[str, object]:
    rng = random.Random(seed)
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        for part in ("manifests", "environments", "pipelines"):
            shutil.copytree(ROOT / part, repo / part)
        env = {**os.environ, "LLMOPS_ACTOR": "crash-harness"}
        for attempt in range(kills):
            proc = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(repo)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert proc.stdout is not None
            # After one whole iteration the writer says how long it took; the kill then
            # lands anywhere in the next ~3 iterations: validation, bundle, object, ledger.
            ready = proc.stdout.readline().split()
            iteration = float(ready[1]) if len(ready) == 2 else max_delay_ms / 1000
            time.sleep(rng.uniform(0, 3 * iteration))
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate()
            if proc.returncode != -signal.SIGKILL:
                failures.append(f"kill {attempt}: writer exited {proc.returncode}: {err.decode()[-300:]}")
                continue
            check = subprocess.run(
                [sys.executable, "-m", "llmops", "archive", "verify", "--path", str(repo), "-o", "json"],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if check.returncode != 0:
                failures.append(f"kill {attempt}: verify failed: {check.stdout[-500:]}{check.stderr[-300:]}")
        again = subprocess.run(
            [sys.executable, "-m", "llmops", "release", "create", "summarizer", "--path", str(repo)],
            cwd=ROOT, capture_output=True, text=True,
        )
        if again.returncode != 0:
            failures.append(f"rerun failed: {again.stderr[-300:]}")
        final = subprocess.run(
            [sys.executable, "-m", "llmops", "archive", "verify", "--path", str(repo), "-o", "json"],
            cwd=ROOT, capture_output=True, text=True,
        )
        summary = json.loads(final.stdout) if final.stdout.strip().startswith("{") else {}
    return {
        "kills": kills,
        "note": "each kill lands 0-3 writer iterations after the first completed one",
        "failures": failures,
        "final_entries": summary.get("entries"),
        "final_objects": summary.get("objects"),
        "final_ok": summary.get("ok"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-delay-ms", type=int, default=60, help="used if the writer reports no timing")
    args = parser.parse_args()
    result = run(args.kills, args.seed, args.max_delay_ms)
    print(json.dumps(result, indent=2))
    out = ROOT / "benchmarks" / "results" / "crash_archive.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    raise SystemExit(1 if result["failures"] or not result["final_ok"] else 0)


if __name__ == "__main__":
    main()
