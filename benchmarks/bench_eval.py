"""Eval runner speed (issue: eval engine).

1,000 generated cases with one ``contains`` assertion each (a JSONL dataset), against
the stub model in a separate process at 50 ms latency, concurrency 50:

  - no cache: wall ≤ 1.25 s (the floor is 1,000 / 50 × 50 ms = 1.0 s) and
    ≤ 0.5 ms of this process's CPU per case;
  - a cached rerun (0 model calls): wall ≤ 0.3 s.

Prints wall time, CPU ms per case (process CPU time / cases), model calls and cache hits
for each run, and writes benchmarks/results/eval.json. "wall" is the run itself
(``execute``); "prepare" (load manifests, read the dataset, render every case) is shown
beside it.

A reference row runs the same eval through :class:`MinimalHttp`, a bare keep-alive
HTTP/1.1 client defined here (benchmark only, no retries, no TLS), to separate the
runner's own cost from the HTTP client's (OpenAIClient, on ``llmops.adapters.http1``).

Each row is run ``--runs`` times; the run with the best wall time is shown, with the
median CPU ms per case over all runs beside it (the machine may be shared and noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

STUB = """
import sys
from llmops.stub.config import StubConfig
from llmops.stub.runner import StubServer
with StubServer(StubConfig(latency_ms=float(sys.argv[1]))) as stub:
    print(stub.url, flush=True)
    sys.stdin.read()
"""

APP = """\
apiVersion: llmops.dev/v1
kind: LLMApp
metadata: {name: bench}
spec:
  model: {provider: stub, name: stub, timeoutSeconds: 10, maxRetries: 2}
  prompt:
    system: prompts/system.j2
    user: prompts/user.j2
    inputs: {question: {type: string}}
  guardrails: {input: {injectionHeuristics: false}}
  evals: [evals/bench.yaml]
"""

SUITE = """\
apiVersion: llmops.dev/v1
kind: EvalSuite
metadata: {name: bench}
spec:
  dataset: data/cases.jsonl
"""


def make_repo(root: Path, cases: int) -> Path:
    app = root / "manifests" / "bench"
    for sub in ("prompts", "evals/data"):
        (app / sub).mkdir(parents=True, exist_ok=True)
    (app / "app.yaml").write_text(APP)
    (app / "prompts" / "system.j2").write_text("You answer questions. Ref {{ canary }}.\n")
    (app / "prompts" / "user.j2").write_text("Question: {{ question }}\n")
    (app / "evals" / "bench.yaml").write_text(SUITE)
    lines = [
        json.dumps(
            {
                "id": f"case-{i:04d}",
                "inputs": {"question": f"what is item {i}?"},
                "assert": [{"type": "contains", "value": f"item {i}?"}],
            }
        )
        for i in range(cases)
    ]
    (app / "evals" / "data" / "cases.jsonl").write_text("\n".join(lines) + "\n")
    return root


class MinimalHttp:
    """A bare keep-alive HTTP/1.1 chat client: the floor an HTTP client can reach here."""

    def __init__(self) -> None:
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def complete(self, request: Any, api_key: str | None = None) -> Any:
        from llmops.domain.chat import ChatResponse, Usage

        started = time.perf_counter()
        hostport = request.base_url.split("//", 1)[1].split("/", 1)[0]
        host, port = hostport.rsplit(":", 1)
        body = {**request.params, "model": request.model}
        body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
        data = json.dumps(body).encode()
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: "
            b"application/json\r\nContent-Length: %d\r\n\r\n" % (hostport.encode(), len(data))
            + data
        )
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        payload = json.loads(await reader.readexactly(length))
        self._idle.append((reader, writer))
        usage = payload.get("usage") or {}
        return ChatResponse(
            payload["choices"][0]["message"]["content"],
            Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            payload.get("model", ""),
            (time.perf_counter() - started) * 1000,
        )

    async def aclose(self) -> None:
        for _, writer in self._idle:
            writer.close()


def measure(
    repo: Path, url: str, cache: Path, use_cache: bool, concurrency: int, minimal: bool = False
) -> dict[str, Any]:
    from llmops.evals.api import EvalSettings, prepare_eval, run_prepared

    settings = EvalSettings(
        model_url=url, concurrency=concurrency, use_cache=use_cache, cache_path=cache
    )
    t0 = time.perf_counter()
    prepared = prepare_eval(repo, "bench", (), settings)
    prepare_s = time.perf_counter() - t0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run = run_prepared(prepared, provider=MinimalHttp() if minimal else None)  # type: ignore[arg-type]
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    cases = len(run.cases)
    passed = sum(1 for c in run.cases if c.outcome == "pass")
    return {
        "cases": cases,
        "passed": passed,
        "wall_s": round(wall, 4),
        "prepare_s": round(prepare_s, 4),
        "cpu_ms_per_case": round(cpu * 1000 / max(cases, 1), 4),
        "model_calls": run.model_calls,
        "cache_hits": run.cache_hits,
        "retries": run.retries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3, help="uncached runs; the best is kept")
    args = parser.parse_args()
    stub = subprocess.Popen(
        [sys.executable, "-c", STUB, str(args.latency_ms)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert stub.stdout is not None
        url = stub.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            repo = make_repo(Path(tmp) / "repo", args.cases)
            cache = Path(tmp) / "evals.sqlite"
            uncached = [
                measure(repo, url, cache, False, args.concurrency) for _ in range(args.runs)
            ]
            best = min(uncached, key=lambda r: r["wall_s"])
            lean = [
                measure(repo, url, cache, False, args.concurrency, True) for _ in range(args.runs)
            ]
            minimal = min(lean, key=lambda r: r["wall_s"])
            measure(repo, url, cache, True, args.concurrency)  # fills the cache
            cached = measure(repo, url, cache, True, args.concurrency)
    finally:
        if stub.stdin is not None:
            stub.stdin.close()
        stub.wait(10)
    floor = args.cases / args.concurrency * args.latency_ms / 1000

    def median_cpu(runs: list[dict[str, Any]]) -> float:
        return round(statistics.median(r["cpu_ms_per_case"] for r in runs), 4)

    rows = {
        "no cache (best)": {
            **best,
            "cpu_ms_per_case_median": median_cpu(uncached),
            "target_wall_s": 1.25,
            "target_cpu_ms_per_case": 0.5,
        },
        "no cache (all walls)": {"wall_s": [r["wall_s"] for r in uncached],
                                 "cpu_ms_per_case": [r["cpu_ms_per_case"] for r in uncached]},
        "cached rerun": {**cached, "target_wall_s": 0.3},
        "no cache, minimal HTTP client (reference)": {
            **minimal,
            "cpu_ms_per_case_median": median_cpu(lean),
            "target_wall_s": 1.25,
            "target_cpu_ms_per_case": 0.5,
        },
    }
    print(f"{args.cases} cases, stub at {args.latency_ms:g} ms, concurrency {args.concurrency}, "
          f"floor {floor:.2f}s")
    for name in ("no cache (best)", "cached rerun", "no cache, minimal HTTP client (reference)"):
        row = rows[name]
        print(
            f"{name}:\n  wall {row['wall_s']:.3f}s (target {row['target_wall_s']}s)  "
            f"prepare {row['prepare_s']:.3f}s  cpu {row['cpu_ms_per_case']:.3f} ms/case  "
            f"model calls {row['model_calls']}  cache hits {row['cache_hits']}  "
            f"passed {row['passed']}/{row['cases']}"
        )
        if "cpu_ms_per_case_median" in row:
            print(f"  cpu median of {args.runs} runs: {row['cpu_ms_per_case_median']:.3f} ms/case")
    print(f"no-cache walls: {rows['no cache (all walls)']['wall_s']}")
    out = HERE / "results" / "eval.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"cases": args.cases, "latency_ms": args.latency_ms,
                               "concurrency": args.concurrency, "floor_s": floor,
                               "results": rows}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
