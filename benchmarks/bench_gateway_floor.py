"""The floor under the gateway's overhead (issue: prompt runtime): what a gateway that
does nothing adds on this machine.

A minimal forwarder on the gateway's own parts (llmops' HTTP server and model client,
``llmops.adapters.asgi_server`` and ``llmops.adapters.http1``) reads a request, sends the
stub the chat request ``bench_gateway.py`` sends, and returns the stub's answer: no
guardrails, render, JSON handling, logs or metrics. Measured as ``bench_gateway.py``
measures (open loop, the two paths in turns); the difference to that benchmark's result
is what the gateway's own work costs. Prints one line and writes
benchmarks/results/gateway-floor.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import bench_gateway as bg  # noqa: E402

FORWARDER = """
import sys
from llmops.adapters.asgi_server import AsgiServer, bind
from llmops.adapters.http1 import HttpClient

url, port, payload = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "rb").read()
client = HttpClient()
endpoint = client.endpoint(url.rstrip("/") + "/chat/completions")
TYPE = b"Content-Type: application/json\\r\\n"


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await receive()
    reply = await client.request(endpoint, b"POST", payload, TYPE, timeout=30)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(reply.body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


AsgiServer(app, lifespan=False).run([bind("127.0.0.1", port)])
"""


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main() -> None:
    args = bg.arguments(__doc__ or "", "gateway-floor.json")
    bg.client_loop()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        bg.write_repo(repo)
        stub, stub_url, stub_port = bg.start_stub(env)
        forwarder: subprocess.Popen[str] | None = None
        try:
            body = bg.direct_body(repo, stub_url)
            (Path(tmp) / "payload.json").write_bytes(body)
            port = bg.free_port()
            forwarder = subprocess.Popen(
                [sys.executable, "-c", FORWARDER, stub_url, str(port), str(Path(tmp) / "payload.json")],
                env=env, text=True,
            )  # fmt: skip
            deadline = time.monotonic() + 30
            while not port_open(port):
                if forwarder.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the forwarder did not start")
                time.sleep(0.05)
            question = json.dumps({"inputs": {"question": bg.QUESTION}}).encode()
            paths: dict[str, tuple[int, bytes, int | None]] = {
                "direct": (
                    stub_port,
                    bg.http_request("/v1/chat/completions", stub_port, body),
                    None,
                ),
                "forwarder": (port, bg.http_request("/", port, question), None),
            }
            runs = bg.in_turns(paths, args.rate, args.duration, args.block, args.warmup)
        finally:
            bg.stop(forwarder, stub)
    latencies = {name: run["latencies"] for name, run in runs.items()}
    medians = {name: statistics.median(values) for name, values in latencies.items()}
    added = medians["forwarder"] - medians["direct"]
    print(
        f"{args.rate:g} req/s, {args.duration:g} s per path: direct {medians['direct']:.3f} ms, "
        f"minimal forwarder {medians['forwarder']:.3f} ms, added {added:.3f} ms at the median"
    )
    report: dict[str, Any] = {
        "benchmark": "gateway-floor",
        "rate_per_s": args.rate,
        "duration_s": args.duration,
        "median_ms": {name: round(value, 3) for name, value in medians.items()},
        "requests": {name: len(values) for name, values in latencies.items()},
        "added_median_ms": round(added, 3),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
