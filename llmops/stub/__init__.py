"""The llmops stub model: an OpenAI-compatible test server that is NOT a real LLM.

Used by the test suite, the eval engine's local runs and ``llmops stub-model`` demos.
Replies come from scripted regex rules or echo the last user message; latency and
faults (429, 500, hangs, malformed JSON, truncated streams) are injected on request.

- ``llmops.stub.config``: :class:`StubConfig`, the knobs (pure);
- ``llmops.stub.rules``: scripted replies and the rules file loader;
- ``llmops.stub.text``: whitespace token counts and deterministic embeddings;
- ``llmops.stub.server``: the Starlette app (``create_app``);
- ``llmops.stub.runner``: :class:`StubServer`, the app on a free 127.0.0.1 port in a thread.

Importing this package is cheap; the server modules import Starlette and uvicorn.
"""
