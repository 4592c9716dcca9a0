"""Run ``llmops serve``: wire a loaded app, the OpenAI-compatible client, the readiness
probe and the reloader into the server, and run it; called by ``llmops.cli.serve`` (and
usable from Python).

Why llmops' own HTTP/1.1 server (``llmops.adapters.asgi_server``), and no web framework:
the gateway should add at most a millisecond to a model call. uvicorn's per-request
Python work measured about a fifth of that budget at 200 requests/s; the own server
keeps what the gateway needs (keep-alive, back-pressure, streaming, limits, graceful
shutdown on SIGTERM: in-flight requests finish, new connections are refused) on the same
C parts, ``httptools`` for parsing and ``uvloop`` for the loop (the standard library's
loop where uvloop is not installed), named in the "serving" log line. The application is
plain ASGI (``llmops.runtime.server``): see there why a framework's per-request objects
are not worth their cost. The benchmark is ``benchmarks/bench_gateway.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TextIO

from llmops.runtime.heap import settle_heap
from llmops.runtime.loaded import LoadedApp
from llmops.runtime.logs import JsonLogger
from llmops.runtime.metrics import RuntimeMetrics
from llmops.runtime.provider import ModelProvider
from llmops.runtime.server import AppSlot, Gateway, ReadinessProbe, ServerOptions, create_app


def provider_for(slots: Mapping[str, AppSlot]) -> Callable[[], ModelProvider]:
    """A factory for the OpenAI-compatible client, called in the server's event loop;
    costs come from :func:`pricer_for`."""
    pricer = pricer_for(slots)

    def build() -> ModelProvider:
        from llmops.adapters.openai_client import OpenAIClient

        # A gateway should not sit on a request for the 30 s a Retry-After may ask for.
        return OpenAIClient(pricer=pricer, retry_after_cap=5.0, backoff_cap=2.0)

    return build


def pricer_for(slots: Mapping[str, AppSlot]) -> Callable[[str, int, int], float]:
    """``pricer(model, prompt_tokens, completion_tokens)`` in USD, with the prices of the
    apps' current versions: a reload that changes ``spec.model.pricing`` takes effect at
    once. The price table is built once and again after a slot is swapped, not per call."""
    from llmops.runtime.pricing import PriceTable

    built: list[PriceTable] = []

    def forget() -> None:
        built.clear()

    for slot in slots.values():
        slot.on_swap(forget)

    def pricer(model: str, prompt_tokens: int, completion_tokens: int) -> float:
        if not built:
            overrides = {
                slot.current.model.name: slot.current.model.pricing
                for slot in slots.values()
                if slot.current.model.pricing is not None
            }
            built.append(PriceTable(overrides))
        return built[0](model, prompt_tokens, completion_tokens)

    return pricer


def probe_factory() -> ReadinessProbe:
    from llmops.adapters.probe import ModelProbe

    return ModelProbe(timeout_seconds=2.0)


def build_gateway(
    loaded: LoadedApp,
    load: Callable[[], LoadedApp] | None = None,
    *,
    reload: bool = False,
    reload_interval: float = 0.5,
    logger: JsonLogger | None = None,
    options: ServerOptions | None = None,
    reload_err: TextIO | None = None,
) -> Gateway:
    """The server state for one app; with ``reload``, ``load`` is re-run on file changes
    and reload problems are printed to ``reload_err`` (default stderr)."""
    from llmops.runtime.reload import Reloader

    slot = AppSlot(loaded)
    metrics = RuntimeMetrics()
    logger = logger or JsonLogger()
    background: list[Callable[[], Coroutine[Any, Any, None]]] = []
    if reload:
        if load is None:
            raise ValueError("reload needs a load function")
        reloader = Reloader(
            slot, load, interval=reload_interval, logger=logger, metrics=metrics, err=reload_err
        )
        background.append(reloader.run)
    slots = {loaded.name: slot}
    return Gateway(
        slots=slots,
        provider_factory=provider_for(slots),
        probe_factory=probe_factory,
        metrics=metrics,
        logger=logger,
        options=options or ServerOptions(),
        background=background,
    )


def serve(
    loaded: LoadedApp,
    load: Callable[[], LoadedApp] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    reload: bool = False,
    log_level: str = "info",
    graceful_seconds: int = 30,
) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests get ``graceful_seconds`` to finish."""
    from llmops.adapters.asgi_server import AsgiServer, ServerLimits, bind

    logger = JsonLogger(level=log_level)
    gateway = build_gateway(loaded, load, reload=reload, logger=logger)
    if loaded.model.api_key_problem:
        logger.warning("no API key", app=loaded.name, detail=loaded.model.api_key_problem)
    sock = bind(host, port)
    server = AsgiServer(
        create_app(gateway), limits=ServerLimits(graceful_seconds=float(graceful_seconds))
    )
    logger.info(
        "serving",
        app=loaded.name,
        release=loaded.release,
        environment=loaded.environment,
        url=f"http://{host}:{sock.getsockname()[1]}",
        model=loaded.model.name,
        model_url=loaded.model.base_url,
        reload=reload,
        loop=server.loop_name,
        http="httptools",
    )
    settle_heap()
    try:
        server.run([sock])
    finally:
        sock.close()
