"""Readiness probe of an OpenAI-compatible model backend; built by ``llmops.runtime.serving``
and called by the runtime's ``GET /readyz``.

``GET {base_url}/models`` with a short timeout: a 2xx means the backend answers and
accepts the key. The API key travels only in the Authorization header and never appears
in a returned reason.
"""

from __future__ import annotations

import aiohttp

from llmops.adapters.openai_wire import redact


class ModelProbe:
    """One pooled HTTP client for readiness checks; ``aclose()`` it when done.

    aiohttp, like the model client, so a served app loads one HTTP stack; the session is
    made on first use, inside the server's event loop.
    """

    def __init__(self, timeout_seconds: float = 2.0) -> None:
        self._timeout = timeout_seconds
        self._http: aiohttp.ClientSession | None = None

    async def check(self, base_url: str, api_key: str | None) -> str | None:
        """None when the backend is ready, else why not (one line, no secret)."""
        url = f"{base_url.rstrip('/')}/models"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        try:
            async with self._http.get(url, headers=headers, allow_redirects=False) as response:
                status, reason = response.status, response.reason or ""
        except TimeoutError:
            return f"{url} did not answer within {self._timeout:g}s"
        except (aiohttp.ClientError, ValueError) as exc:
            return redact(f"cannot reach {url}: {type(exc).__name__}: {exc}", api_key)
        if 200 <= status < 300:
            return None
        if status in (401, 403):
            return f"{url} answered {status}: the API key is missing or rejected"
        return f"{url} answered {status} {reason}".rstrip()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
