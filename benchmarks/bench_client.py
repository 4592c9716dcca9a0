"""OpenAI client overhead (issues: lean model client; lean pooled HTTP/1.1 client).

1,000 ``OpenAIClient.complete()`` calls at concurrency 50 against the stub model in a
separate process (``python -m llmops stub-model --latency-ms 50``), side by side with the
same calls made through the two transports bare (build the body, POST it, read the
reply, ``json.loads`` it: no retries, no error mapping, no wire checks):

  - ``raw http1 client``: llmops' own transport (``llmops.adapters.http1.HttpClient``),
    which OpenAIClient runs on;
  - ``raw aiohttp session``: a bare ``aiohttp.ClientSession``, which it ran on before.

Reports CPU ms per request (this process's CPU time / requests) and wall time for each,
and the ratios. Targets: OpenAIClient within ~20% of its raw transport, and well under
raw aiohttp (an eval case may spend ≤ 0.5 ms of CPU in all, benchmarks/bench_eval.py).

The client row has no pricer: that is the client's own cost. Another row adds the
``PriceTable`` that ``llmops eval`` passes as the pricer (llmops.runtime.pricing), which is
what an eval case pays in all.

Each round builds a fresh client (or session), runs every request and closes it, so
connection set-up is included. Rounds alternate between the rows and a warm-up round of
each (imports, the TLS context) is not counted; the median and best round are reported.
The event loop is uvloop when installed, as ``llmops eval`` and ``llmops serve`` run it
(``--loop asyncio`` for the standard loop). ``--with-httpx`` adds a bare
``httpx.AsyncClient`` row, the client before aiohttp, for reference.

Writes benchmarks/results/client.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KEY = "sk-bench-0123456789abcdef"

Call = Callable[[int], Awaitable[str]]


def start_stub(latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    """The stub model on a free port; its base URL once it answers /healthz."""
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "llmops", "stub-model", "--port", "0"),
            *("--latency-ms", f"{latency_ms:g}", "--log-level", "warning"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    url = ""
    for line in proc.stdout:
        if line.startswith("base URL:"):
            url = line.split(":", 1)[1].strip()
            break
    if not url:
        proc.kill()
        raise SystemExit("the stub model did not start")
    # keep reading its output so a full pipe never blocks it
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(url.removesuffix("/v1") + "/healthz", timeout=1):
                return proc, url
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("the stub model does not answer /healthz") from None
            time.sleep(0.05)


def request_for(url: str, i: int) -> Any:
    from llmops.domain.chat import ChatMessage, ChatRequest

    return ChatRequest(
        base_url=url,
        model="stub",
        messages=(
            ChatMessage("system", "You answer questions briefly."),
            ChatMessage("user", f"Question: what is item {i}?"),
        ),
        params={"temperature": 0},
        timeout_seconds=10,
        max_retries=2,
    )


async def drive(call: Call, requests: int, concurrency: int) -> int:
    """``requests`` calls from ``concurrency`` workers; how many replies were right."""
    next_index = 0
    good = 0

    async def worker() -> None:
        nonlocal next_index, good
        while next_index < requests:
            i = next_index
            next_index += 1
            if (await call(i)).endswith(f"item {i}?"):
                good += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return good


async def run_client(url: str, requests: int, concurrency: int, priced: bool = False) -> int:
    """The client as ``llmops eval`` builds it (llmops.evals.api._client); ``priced`` adds
    the eval's ``PriceTable`` pricer, whose cost is the runtime's, not the client's."""
    from llmops.adapters.openai_client import OpenAIClient
    from llmops.runtime.pricing import PriceTable

    client = OpenAIClient(
        pricer=PriceTable() if priced else None,
        max_connections=concurrency,
        retry_after_cap=5.0,
        backoff_cap=2.0,
    )
    try:

        async def call(i: int) -> str:
            return (await client.complete(request_for(url, i), KEY)).content

        return await drive(call, requests, concurrency)
    finally:
        await client.aclose()


async def run_client_priced(url: str, requests: int, concurrency: int) -> int:
    return await run_client(url, requests, concurrency, priced=True)


async def run_raw_aiohttp(url: str, requests: int, concurrency: int) -> int:
    """The same calls through a bare aiohttp session: the floor for an aiohttp client."""
    import aiohttp

    endpoint = f"{url}/chat/completions"
    headers = {"Authorization": f"Bearer {KEY}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call(i: int) -> str:
            request = request_for(url, i)
            body = {**request.params, "model": request.model}
            body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
            timeout = aiohttp.ClientTimeout(total=request.timeout_seconds)
            async with session.post(endpoint, json=body, headers=headers, timeout=timeout) as r:
                data = json.loads(await r.read())
            if r.status != 200:
                raise RuntimeError(f"{r.status}: {data}")
            content: str = data["choices"][0]["message"]["content"]
            return content

        return await drive(call, requests, concurrency)


async def run_raw_http1(url: str, requests: int, concurrency: int) -> int:
    """The same calls through llmops' bare HTTP/1.1 transport: OpenAIClient's floor."""
    from llmops.adapters.http1 import HttpClient, header_lines

    http = HttpClient(
        max_connections=concurrency, headers={"Content-Type": "application/json"}, proxies={}
    )
    endpoint = http.endpoint(f"{url}/chat/completions")
    headers = header_lines({"Authorization": f"Bearer {KEY}"})
    try:

        async def call(i: int) -> str:
            request = request_for(url, i)
            body = {**request.params, "model": request.model}
            body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
            r = await http.request(
                endpoint, b"POST", json.dumps(body).encode(), headers,
                timeout=request.timeout_seconds,
            )
            data = json.loads(r.body)
            if r.status != 200:
                raise RuntimeError(f"{r.status}: {data}")
            content: str = data["choices"][0]["message"]["content"]
            return content

        return await drive(call, requests, concurrency)
    finally:
        await http.aclose()


async def run_raw_httpx(url: str, requests: int, concurrency: int) -> int:
    """The same calls through a bare httpx client (what OpenAIClient used before)."""
    import httpx

    endpoint = f"{url}/chat/completions"
    headers = {"Authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as http:

        async def call(i: int) -> str:
            request = request_for(url, i)
            body = {**request.params, "model": request.model}
            body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
            r = await http.post(
                endpoint, json=body, headers=headers, timeout=request.timeout_seconds
            )
            data = json.loads(r.content)
            if r.status_code != 200:
                raise RuntimeError(f"{r.status_code}: {data}")
            content: str = data["choices"][0]["message"]["content"]
            return content

        return await drive(call, requests, concurrency)


RUNNERS: dict[str, Callable[[str, int, int], Coroutine[Any, Any, int]]] = {
    "OpenAIClient": run_client,
    "raw http1 client": run_raw_http1,
    "raw aiohttp session": run_raw_aiohttp,
    "OpenAIClient + PriceTable": run_client_priced,
    "raw httpx client (reference)": run_raw_httpx,
}


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if kind == "asyncio":
        return None
    import uvloop

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def measure(name: str, url: str, requests: int, concurrency: int, loop: str) -> dict[str, Any]:
    runner = RUNNERS[name]
    with asyncio.Runner(loop_factory=loop_factory(loop)) as event_loop:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        good = event_loop.run(runner(url, requests, concurrency))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if good != requests:
        raise SystemExit(f"{name}: {requests - good} of {requests} replies were wrong")
    return {"cpu_ms_per_request": cpu * 1000 / requests, "wall_s": wall}


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    cpu = [r["cpu_ms_per_request"] for r in rounds]
    wall = [r["wall_s"] for r in rounds]
    return {
        "cpu_ms_per_request": round(statistics.median(cpu), 4),
        "cpu_ms_per_request_best": round(min(cpu), 4),
        "wall_s": round(statistics.median(wall), 4),
        "wall_s_best": round(min(wall), 4),
        "rounds": {
            "cpu_ms_per_request": [round(c, 4) for c in cpu],
            "wall_s": [round(w, 4) for w in wall],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds of each")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--with-httpx", action="store_true", help="add a raw httpx row")
    args = parser.parse_args()
    if args.loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            args.loop = "asyncio"
    names = list(RUNNERS)[:4] + (list(RUNNERS)[4:] if args.with_httpx else [])
    stub, url = start_stub(args.latency_ms)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    try:
        for name in names:  # warm-up: imports, the TLS context, first connections
            measure(name, url, min(args.requests, 200), args.concurrency, args.loop)
        for _ in range(args.rounds):
            for name in names:
                rounds[name].append(measure(name, url, args.requests, args.concurrency, args.loop))
    finally:
        stub.terminate()
        stub.wait(10)
    floor = args.requests / args.concurrency * args.latency_ms / 1000
    results = {name: summary(rounds[name]) for name in names}
    client_cpu = results["OpenAIClient"]["cpu_ms_per_request"]
    http1_cpu = results["raw http1 client"]["cpu_ms_per_request"]
    aiohttp_cpu = results["raw aiohttp session"]["cpu_ms_per_request"]
    ratio = client_cpu / http1_cpu
    vs_aiohttp = client_cpu / aiohttp_cpu
    transports = http1_cpu / aiohttp_cpu
    priced_ratio = results["OpenAIClient + PriceTable"]["cpu_ms_per_request"] / http1_cpu
    print(
        f"{args.requests} requests, concurrency {args.concurrency}, stub at "
        f"{args.latency_ms:g} ms (wall floor {floor:.2f}s), {args.loop} loop, "
        f"median of {args.rounds} rounds"
    )
    print(f"{'':32}{'CPU ms/request':>16}{'(best)':>9}{'wall s':>9}{'(best)':>9}")
    for name in names:
        row = results[name]
        print(
            f"{name:32}{row['cpu_ms_per_request']:>16.3f}{row['cpu_ms_per_request_best']:>9.3f}"
            f"{row['wall_s']:>9.3f}{row['wall_s_best']:>9.3f}"
        )
    print(f"OpenAIClient / raw http1 CPU: {ratio:.2f}x (target ≤ 1.2x)")
    print(f"OpenAIClient + PriceTable / raw http1 CPU: {priced_ratio:.2f}x")
    print(f"OpenAIClient / raw aiohttp CPU: {vs_aiohttp:.2f}x")
    print(f"raw http1 / raw aiohttp CPU: {transports:.2f}x")
    out = HERE / "results" / "client.json"
    out.parent.mkdir(exist_ok=True)
    import aiohttp

    out.write_text(
        json.dumps(
            {
                "requests": args.requests,
                "concurrency": args.concurrency,
                "latency_ms": args.latency_ms,
                "rounds": args.rounds,
                "loop": args.loop,
                "floor_s": floor,
                "python": platform.python_version(),
                "aiohttp": aiohttp.__version__,
                "client_over_raw_http1_cpu": round(ratio, 3),
                "target_client_over_raw_http1_cpu": 1.2,
                "client_with_price_table_over_raw_http1_cpu": round(priced_ratio, 3),
                "client_over_raw_aiohttp_cpu": round(vs_aiohttp, 3),
                "raw_http1_over_raw_aiohttp_cpu": round(transports, 3),
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
