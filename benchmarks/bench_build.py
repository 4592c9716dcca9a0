"""`llmops build` speed on the local Docker Engine (issue: build).

Measures, as medians of repeated `llmops build` runs (real subprocesses, real engine,
real registry) of the example summarizer on the locally made Python base image:
  - a prompt-only change → a rebuilt image, warm cache (target ≤ 3 s);
  - the same with --push to the registry on 127.0.0.1:5000;
  - an unchanged release: builds 0 and pushes 0 (checked, not only timed);
  - once: making the base image with scripts/make-base-image.sh, and the image sizes.

Needs dockerd (and docker-registry for the push rows; started here when absent). The
llmops imported is a snapshot of this tree (PYTHONPATH), so edits made meanwhile do not
rebuild the llmops wheel in the middle of the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BASE_IMAGE = "llmops-test/python:3.11-bookworm"
REGISTRY = "127.0.0.1:5000"
APP = "summarizer"


def registry_answers() -> bool:
    import httpx

    try:
        return httpx.get(f"http://{REGISTRY}/v2/", timeout=2).status_code in (200, 401)
    except httpx.HTTPError:
        return False


def start_registry(work: Path) -> subprocess.Popen[bytes] | None:
    if registry_answers():
        return None
    binary = shutil.which("docker-registry")
    if binary is None:
        raise SystemExit(f"no registry on {REGISTRY} and docker-registry is not installed")
    config = work / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {work / 'registry'}}}}}\n"
        f"http: {{addr: {REGISTRY}}}\n"
    )
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not registry_answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("docker-registry did not start")
        time.sleep(0.1)
    return proc


def snapshot_source(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "llmops", dest / "llmops", ignore=ignore)
    return dest


def make_repo(dest: Path, registry: str) -> Path:
    for name in ("manifests", "environments", "pipelines", "schemas"):
        shutil.copytree(ROOT / name, dest / name)
    (dest / "environments" / "bench.yaml").write_text(
        "apiVersion: llmops.dev/v1\nkind: Environment\nmetadata: {name: bench}\n"
        f"spec:\n  target: {{kind: docker}}\n  registry: {registry}\n  releases: {{}}\n"
    )
    return dest


def change_prompt(repo: Path) -> None:
    system = repo / "manifests" / APP / "prompts" / "system.j2"
    system.write_text(system.read_text() + f"Revision {uuid.uuid4().hex}.\n")


def build(repo: Path, env: dict[str, str], *extra: str) -> tuple[float, dict[str, Any]]:
    argv = [
        sys.executable, "-m", "llmops", "build", APP, "--path", str(repo), "--env", "bench",
        "--base-image", BASE_IMAGE, "--python", "3.11", "-o", "json", *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"llmops build failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed, json.loads(proc.stdout)


def docker_size(reference: str) -> int:
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", reference],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="runs per row (at least 5)")
    parser.add_argument("--skip-base", action="store_true", help="do not time the base image script")
    args = parser.parse_args()
    runs = max(5, args.runs)
    rows: dict[str, dict[str, Any]] = {}
    namespace = f"llmops-bench-{uuid.uuid4().hex[:8]}"
    made: list[str] = []
    with tempfile.TemporaryDirectory(prefix="llmops-bench-build-") as tmp:
        work = Path(tmp)
        registry = start_registry(work)
        script = ROOT / "scripts" / "make-base-image.sh"
        try:
            if not args.skip_base:
                probe = f"llmops-bench/python:{namespace}"
                start = time.perf_counter()
                subprocess.run(["bash", str(script), probe], check=True, capture_output=True)
                rows["make-base-image.sh (apt download + import)"] = {
                    "median_s": time.perf_counter() - start,
                    "runs": 1,
                    "image_mb": round(docker_size(probe) / 1e6, 1),
                }
                subprocess.run(["docker", "rmi", probe], check=True, capture_output=True)
            if subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True).returncode:
                subprocess.run(["bash", str(script), BASE_IMAGE], check=True)
            source = snapshot_source(work / "source")
            env = {**os.environ, "PYTHONPATH": str(source)}
            repo = make_repo(work / "repo", f"{REGISTRY}/{namespace}")

            change_prompt(repo)
            first_s, first = build(repo, env)  # warms the wheel, wheelhouse and layer caches
            made.append(first["tag"])
            rows["first build of this run (caches as found)"] = {
                "median_s": first_s, "runs": 1, "steps_cached": f"{first['cachedSteps']}/{first['steps']}",
            }  # fmt: skip

            for label, extra in (
                ("prompt-only change -> rebuilt image (warm)", ()),
                ("prompt-only change -> rebuilt + pushed (warm)", ("--push",)),
            ):
                samples, inner, cached = [], [], []
                for _ in range(runs):
                    change_prompt(repo)
                    elapsed, result = build(repo, env, *extra)
                    made.append(result["tag"])
                    assert result["builds"] == 1 and result["pushes"] == (1 if extra else 0)
                    samples.append(elapsed)
                    inner.append(sum(result["seconds"].values()))
                    cached.append(f"{result['cachedSteps']}/{result['steps']}")
                rows[label] = {
                    "median_s": statistics.median(samples),
                    "min_s": min(samples),
                    "in_process_median_s": statistics.median(inner),
                    "runs": runs,
                    "steps_cached": sorted(set(cached)),
                    "target_s": 3.0,
                }

            for label, extra in (
                ("unchanged release -> nothing", ()),
                ("unchanged release --push -> nothing", ("--push",)),
            ):
                samples, builds, pushes = [], 0, 0
                for _ in range(runs):
                    elapsed, result = build(repo, env, *extra)
                    samples.append(elapsed)
                    builds += result["builds"]
                    pushes += result["pushes"]
                rows[label] = {
                    "median_s": statistics.median(samples),
                    "min_s": min(samples),
                    "runs": runs,
                    "builds": builds,
                    "pushes": pushes,
                }
            rows["release image size"] = {"image_mb": round(docker_size(made[-1]) / 1e6, 1)}
        finally:
            for tag in made:
                subprocess.run(["docker", "rmi", "--no-prune", tag], capture_output=True)
            if registry is not None:
                registry.terminate()
                registry.wait(10)

    print(f"{'measure':48} {'median':>9} {'min':>9} {'target':>8}  notes")
    for name, row in rows.items():
        median = f"{row['median_s']:8.3f}s" if "median_s" in row else f"{'-':>9}"
        low = f"{row['min_s']:8.3f}s" if "min_s" in row else f"{'-':>9}"
        target = f"{row['target_s']:.1f}s" if "target_s" in row else "-"
        notes = ", ".join(
            f"{k}={v}" for k, v in row.items() if k not in ("median_s", "min_s", "target_s")
        )
        print(f"{name:48} {median} {low} {target:>8}  {notes}")
    out = HERE / "results" / "build.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"runs": runs, "results": rows}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
