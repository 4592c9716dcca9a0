"""``llmops stub-model``: serve the OpenAI-compatible stub model in the foreground.

Called by ``llmops.cli.main`` (lazily). Only click is imported at module level so
``llmops --help`` stays fast; uvicorn and Starlette load when the command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

ALL_KINDS = "429,500,timeout,malformed,truncate"


@click.command("stub-model")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=9999,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (printed in the banner).",
)
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML/JSON file of scripted replies: rules: [{match: <regex>, reply: <text>}].",
)
@click.option(
    "--latency-ms", default=0.0, type=click.FloatRange(min=0), help="Delay before every reply."
)
@click.option(
    "--jitter-ms", default=0.0, type=click.FloatRange(min=0), help="Extra random delay, 0..N ms."
)
@click.option(
    "--fault-rate",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Share of chat/embeddings requests that fail, spread over --fault-kinds.",
)
@click.option(
    "--fault-kinds",
    default=ALL_KINDS,
    show_default=True,
    help="Comma-separated faults to inject: 429, 500, timeout, malformed, truncate.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the fault dice.")
@click.option(
    "--retry-after",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Retry-After seconds sent with injected 429s.",
)
@click.option(
    "--hang-seconds",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="How long an injected timeout hangs before answering.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help="uvicorn's log level.",
)
def stub_model(
    host: str,
    port: int,
    rules_file: Path | None,
    latency_ms: float,
    jitter_ms: float,
    fault_rate: float,
    fault_kinds: str,
    seed: int,
    retry_after: float,
    hang_seconds: float,
    log_level: str,
) -> None:
    """Run the OpenAI-compatible stub model (for tests and demos; NOT a real LLM).

    Serves /v1/chat/completions (plain and streamed), /v1/embeddings, /v1/models,
    /healthz, and /stub/stats, /stub/requests, /stub/reset. Replies come from --rules
    (first matching regex wins) or echo the last user message. Stop with Ctrl-C.
    """
    import uvicorn

    from llmops.stub.config import StubConfig, parse_fault_kinds, spread_faults
    from llmops.stub.rules import load_rules
    from llmops.stub.runner import bind_socket
    from llmops.stub.server import BANNER, create_app

    kinds = parse_fault_kinds(fault_kinds)
    rules = load_rules(rules_file) if rules_file is not None else ()
    config = StubConfig(
        rules=rules,
        latency_ms=latency_ms,
        jitter_ms=jitter_ms,
        faults=spread_faults(fault_rate, kinds),
        seed=seed,
        retry_after_seconds=retry_after,
        hang_seconds=hang_seconds,
    )
    sock = bind_socket(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{sock.getsockname()[1]}/v1"
    faults = f"{fault_rate:.0%} of requests ({', '.join(kinds)})" if config.faults else "none"
    click.echo(
        f"*** {BANNER} ***\n"
        f"OpenAI-compatible stub for tests and demos; replies are scripted or echoed.\n"
        f"base URL:  {url}\n"
        f"rules:     {rules_file or 'none (echo)'} ({len(rules)} rules)\n"
        f"latency:   {latency_ms:g} ms + 0..{jitter_ms:g} ms jitter\n"
        f"faults:    {faults}, seed {seed}\n"
        f"stats:     {url[: -len('/v1')]}/stub/stats"
    )
    sys.stdout.flush()
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), log_level=log_level, timeout_graceful_shutdown=2)
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
