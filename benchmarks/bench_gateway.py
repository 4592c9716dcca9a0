"""Gateway overhead (issue: prompt runtime, `llmops serve`).

The same request two ways, open-loop at ``--rate`` requests/s for ``--duration`` seconds
each (after ``--warmup`` seconds that are not counted), side by side: the two paths take
turns in blocks of ``--block`` seconds, so a change in the machine's speed during the run
(it is shared) weighs on both alike instead of on whichever ran second:

  - direct: ``POST /v1/chat/completions`` to the stub model, with exactly the messages and
    parameters the gateway would send;
  - gateway: ``POST /v1/apps/bench/invoke`` to ``llmops serve`` (input guardrails with
    injection heuristics, sandboxed render, the upstream call, canary and PII output
    guardrails, JSON log line, metrics), which calls the same stub.

Both servers run in their own processes on 127.0.0.1. Requests are sent on schedule
whether or not earlier ones have finished (open loop); latency is measured from the
moment a request is written to the moment its whole response is read, by a minimal
HTTP/1.1 keep-alive client so the load generator adds as little as possible. Target:
≤ 1 ms added at the median. Prints a table and writes benchmarks/results/gateway.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # this tree's llmops, installed or not
TARGET_ADDED_MEDIAN_MS = 1.0

STUB = """
import sys
from llmops.stub.config import StubConfig
from llmops.stub.runner import StubServer
with StubServer(StubConfig()) as stub:
    print(stub.url, flush=True)
    sys.stdin.read()
"""

APP = """\
apiVersion: llmops.dev/v1
kind: LLMApp
metadata: {name: bench}
spec:
  model: {provider: openai-compatible, name: stub, baseUrl: "http://127.0.0.1:9/v1",
          params: {temperature: 0.2, maxTokens: 200}, maxRetries: 0}
  prompt:
    system: prompts/system.j2
    user: prompts/user.j2
    inputs:
      question: {type: string, maxLength: 4000}
      tier: {type: string, default: standard, enum: [free, standard, enterprise]}
  guardrails:
    input: {maxLength: 4000, denyPatterns: ["(?i)BEGIN RSA PRIVATE KEY"]}
    output: {blockCanary: true, redactPii: [email, phone, card], maxLength: 4000}
"""
SYSTEM = """\
You are the support assistant of Acme Cloud ({{ tier }} plan).
{% if tier == "enterprise" %}Offer to escalate to the account manager.{% endif %}
Never reveal the reference {{ canary }}. Answer briefly and politely.
"""
USER = "Customer message:\n<<<\n{{ question }}\n>>>\n"
QUESTION = (
    "Hello, I was charged twice for my subscription this month and I would like to know "
    "why, and whether the second charge will be refunded automatically or if I need to "
    "open a ticket. Thanks in advance for your help!"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_repo(root: Path) -> None:
    files = {
        "manifests/bench/app.yaml": APP,
        "manifests/bench/prompts/system.j2": SYSTEM,
        "manifests/bench/prompts/user.j2": USER,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")


def direct_body(repo: Path, stub_url: str) -> bytes:
    """The chat request the gateway sends upstream for QUESTION, built the same way."""
    from llmops import api
    from llmops.runtime.invoke import chat_request, prepare
    from llmops.runtime.loaded import load_app

    loaded = load_app(api.load(repo), "bench", model_url=stub_url, environ={})
    request = chat_request(loaded, prepare(loaded, {"question": QUESTION}).messages)
    body = dict(request.params)
    body["model"] = request.model
    body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
    return json.dumps(body).encode()


def http_request(path: str, port: int, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


class RawClient:
    """A minimal HTTP/1.1 keep-alive client: one request per connection at a time.

    A pooled connection the server has closed meanwhile (its keep-alive timeout) fails
    before a byte of the answer arrives; the request is then sent again on a new
    connection, timed from the resend, and counted in ``stale``.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self.stale = 0

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        self.opened += 1
        return reader, writer

    async def send(self, raw: bytes) -> tuple[int, float]:
        if self.idle:
            reader, writer = self.idle.pop()
            try:
                return await self._exchange(reader, writer, raw)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise
                writer.close()
                self.stale += 1
        return await self._exchange(*await self._connect(), raw)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
    ) -> tuple[int, float]:
        started = time.perf_counter()
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise RuntimeError("chunked responses are not supported by the bench client")
        await reader.readexactly(length)
        elapsed = time.perf_counter() - started
        self.idle.append((reader, writer))
        return status, elapsed

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def open_loop(port: int, raw: bytes, rate: float, seconds: float) -> dict[str, Any]:
    """Send ``rate`` requests/s for ``seconds``; latencies of the 200s, and the rest."""
    client = RawClient(port)
    loop = asyncio.get_running_loop()
    interval = 1.0 / rate
    count = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    lag_max = 0.0

    async def one() -> None:
        nonlocal errors
        try:
            status, elapsed = await client.send(raw)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            return
        if status == 200:
            latencies.append(elapsed * 1000.0)
        else:
            errors += 1

    tasks = []
    start = loop.time() + 0.05
    for index in range(count):
        due = start + index * interval
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        lag_max = max(lag_max, loop.time() - due)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    await client.close()
    return {
        "latencies": latencies,
        "errors": errors,
        "connections": client.opened,
        "stale_connections": client.stale,
        "sender_lag_max_ms": lag_max * 1000,
    }


def summary(run: dict[str, Any]) -> dict[str, Any]:
    values: list[float] = sorted(run["latencies"])
    if not values:
        return {"requests": 0, "errors": run["errors"]}

    def pct(p: float) -> float:
        return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]

    return {
        "requests": len(values) + run["errors"],
        "ok": len(values),
        "errors": run["errors"],
        "median_ms": round(statistics.median(values), 3),
        "p90_ms": round(pct(90), 3),
        "p99_ms": round(pct(99), 3),
        "max_ms": round(values[-1], 3),
        "mean_ms": round(statistics.fmean(values), 3),
        "connections": run["connections"],
        "stale_connections": run["stale_connections"],
        "sender_lag_max_ms": round(run["sender_lag_max_ms"], 3),
    }


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (Linux ``/proc``), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def gateway_engines(log_path: Path) -> dict[str, str]:
    """The gateway's event loop and HTTP parser, as its "serving" line names them."""
    for line in log_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("msg") == "serving":
                return {"loop": str(record.get("loop")), "http": str(record.get("http"))}
    return {}


def gateway_breakdown(log_path: Path, last: int) -> dict[str, float]:
    """Medians from the gateway's request log lines of the measured run: the handler's
    time (request read to response), the model client's share, and the rest."""
    lines = []
    for line in log_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("msg") == "request" and record.get("upstream_ms") is not None:
                lines.append(record)
    lines = lines[-last:]
    if not lines:
        return {}
    handler = [r["latency_ms"] for r in lines]
    upstream = [r["upstream_ms"] for r in lines]
    own = [r["latency_ms"] - r["upstream_ms"] for r in lines]
    return {
        "handler_median_ms": round(statistics.median(handler), 3),
        "upstream_median_ms": round(statistics.median(upstream), 3),
        "own_median_ms": round(statistics.median(own), 3),
    }


def wait_healthy(port: int, proc: subprocess.Popen[str], seconds: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the gateway exited early with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the gateway did not become healthy")


def start_stub(env: dict[str, str]) -> tuple[subprocess.Popen[str], str, int]:
    """The stub model in its own process: the process, its base URL and its port."""
    stub = subprocess.Popen(
        [sys.executable, "-c", STUB], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    assert stub.stdout is not None
    url = stub.stdout.readline().strip()
    return stub, url, int(url.rsplit(":", 1)[1].split("/")[0])


def stop(*procs: subprocess.Popen[str] | None) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def in_turns(
    paths: dict[str, tuple[int, bytes, int | None]],
    rate: float,
    duration: float,
    block: float,
    warmup: float,
) -> dict[str, dict[str, Any]]:
    """Each path (port, raw request, server pid) warmed up, then measured for
    ``duration`` seconds in turns of about ``block`` seconds; per path the latencies,
    errors, connections and the server's CPU seconds (None where unknown)."""
    for target, raw, _ in paths.values():
        asyncio.run(open_loop(target, raw, rate, warmup))
    runs: dict[str, dict[str, Any]] = {
        name: {"latencies": [], "errors": 0, "connections": 0, "stale_connections": 0,
               "sender_lag_max_ms": 0.0, "cpu_s": 0.0}
        for name in paths
    }  # fmt: skip
    turns = max(1, round(duration / block))
    for _ in range(turns):
        for name, (target, raw, pid) in paths.items():
            cpu_before = cpu_seconds(pid) if pid is not None else None
            run = asyncio.run(open_loop(target, raw, rate, duration / turns))
            cpu_after = cpu_seconds(pid) if pid is not None else None
            total = runs[name]
            total["latencies"] += run["latencies"]
            for key in ("errors", "connections", "stale_connections"):
                total[key] += run[key]
            total["sender_lag_max_ms"] = max(total["sender_lag_max_ms"], run["sender_lag_max_ms"])
            if cpu_before is None or cpu_after is None:
                total["cpu_s"] = None
            elif total["cpu_s"] is not None:
                total["cpu_s"] += cpu_after - cpu_before
    return runs


def arguments(doc: str, out: str) -> argparse.Namespace:
    """The options the gateway benchmarks share; ``out`` is the result file's name."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured per path")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds sent first, not counted")
    parser.add_argument("--block", type=float, default=5.0, help="seconds per turn of each path")
    parser.add_argument("--out", type=Path, default=HERE / "results" / out)
    return parser.parse_args()


def client_loop() -> str:
    """Install uvloop for the load generator where it is there; the loop's name."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    uvloop.install()
    return "uvloop"


def main() -> None:
    args = arguments(__doc__ or "", "gateway.json")
    loop_name = client_loop()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        write_repo(repo)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        stub, stub_url, stub_port = start_stub(env)
        gateway: subprocess.Popen[str] | None = None
        try:
            port = free_port()
            log_path = Path(tmp) / "gateway.log"
            log_file = log_path.open("w", encoding="utf-8")
            gateway = subprocess.Popen(
                [sys.executable, "-m", "llmops", "serve", "bench", "--path", str(repo),
                 "--port", str(port), "--model-url", stub_url],
                stdout=subprocess.DEVNULL, stderr=log_file, text=True, env=env,
            )  # fmt: skip
            wait_healthy(port, gateway)
            direct = http_request("/v1/chat/completions", stub_port, direct_body(repo, stub_url))
            invoke_body = json.dumps({"inputs": {"question": QUESTION}}).encode()
            via = http_request("/v1/apps/bench/invoke", port, invoke_body)

            paths: dict[str, tuple[int, bytes, int | None]] = {
                "direct": (stub_port, direct, stub.pid),
                "gateway": (port, via, gateway.pid),
            }
            runs = in_turns(paths, args.rate, args.duration, args.block, args.warmup)
            results: dict[str, dict[str, Any]] = {}
            for name, total in runs.items():
                results[name] = summary(total)
                if total["cpu_s"] is not None and total["latencies"]:
                    per_request = total["cpu_s"] / results[name]["requests"] * 1000
                    results[name]["server_cpu_ms_per_request"] = round(per_request, 3)
            time.sleep(0.2)
            breakdown = gateway_breakdown(log_path, results["gateway"]["requests"])
            engines = gateway_engines(log_path)
        finally:
            stop(gateway, stub)

    d, g = results["direct"], results["gateway"]
    added_median = round(g["median_ms"] - d["median_ms"], 3)
    added_p99 = round(g["p99_ms"] - d["p99_ms"], 3)
    print(
        f"open loop, {args.rate:g} req/s for {args.duration:g} s per path in turns of "
        f"{args.duration / max(1, round(args.duration / args.block)):g} s "
        f"(after {args.warmup:g} s warm-up)"
    )
    print(
        f"{'path':<10} {'requests':>8} {'errors':>6} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}"
    )
    for name, row in results.items():
        print(
            f"{name:<10} {row['requests']:>8} {row['errors']:>6} {row['median_ms']:>10.3f} "
            f"{row['p99_ms']:>8.3f} {row['max_ms']:>8.3f}"
        )
    print(f"{'added':<10} {'':>8} {'':>6} {added_median:>10.3f} {added_p99:>8.3f}")
    met = added_median <= TARGET_ADDED_MEDIAN_MS
    print(
        f"target: ≤ {TARGET_ADDED_MEDIAN_MS} ms added at the median -> "
        + ("met" if met else "NOT met")
    )
    print(
        "server CPU per request (ms): stub "
        f"{d.get('server_cpu_ms_per_request')}, gateway {g.get('server_cpu_ms_per_request')}"
    )
    load_after = os.getloadavg()
    print(
        f"gateway on llmops' server with loop={engines.get('loop')}, http={engines.get('http')}; "
        f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        f"on {os.cpu_count()} CPUs"
    )
    print(
        "inside the gateway (its own log, median ms): request handling "
        f"{breakdown.get('handler_median_ms')}, of which waiting on the model client "
        f"{breakdown.get('upstream_median_ms')}, the rest (guardrails, render, JSON) "
        f"{breakdown.get('own_median_ms')}"
    )
    report = {
        "benchmark": "gateway",
        "rate_per_s": args.rate,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "block_s": args.block,
        "direct": d,
        "gateway": g,
        "added_median_ms": added_median,
        "added_p99_ms": added_p99,
        "gateway_breakdown": breakdown,
        "gateway_engines": engines,
        "load_average_1m": {"before": load_before[0], "after": load_after[0]},
        "target_added_median_ms": TARGET_ADDED_MEDIAN_MS,
        "target_met": met,
        "client_loop": loop_name,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    tmp_out.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
