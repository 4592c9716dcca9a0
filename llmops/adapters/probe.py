"""Readiness probe of an OpenAI-compatible model backend; built by ``llmops.runtime.serving``
and called by the runtime's ``GET /readyz``.

``GET {base_url}/models`` with a short timeout: a 2xx means the backend answers and
accepts the key. The API key travels only in the Authorization header and never appears
in a returned reason.
"""

from __future__ import annotations

from llmops import __version__
from llmops.adapters.http1 import Endpoint, HttpClient, HttpError, HttpTimeout, InvalidURL
from llmops.adapters.openai_wire import redact


class ModelProbe:
    """One pooled HTTP client for readiness checks; ``aclose()`` it when done.

    llmops' HTTP/1.1 transport, like the model client, so a served app loads one HTTP
    stack; its pool is made on first use, inside the server's event loop. No proxy
    settings are read (as before): the backend is usually next to the app.
    """

    def __init__(self, timeout_seconds: float = 2.0) -> None:
        self._timeout = timeout_seconds
        self._http: HttpClient | None = None
        self._endpoints: dict[str, Endpoint] = {}

    async def check(self, base_url: str, api_key: str | None) -> str | None:
        """None when the backend is ready, else why not (one line, no secret)."""
        url = f"{base_url.rstrip('/')}/models"
        if self._http is None or self._http.closed:
            self._http = HttpClient(
                max_connections=4, headers={"User-Agent": f"llmops/{__version__}"}, proxies={}
            )
            self._endpoints.clear()
        headers = b""
        if api_key:
            if not (api_key.isascii() and api_key.isprintable()) or " " in api_key:
                return f"cannot reach {url}: the API key is not a valid header value"
            headers = b"Authorization: Bearer %s\r\n" % api_key.encode("ascii")
        try:
            endpoint = self._endpoints.get(url)
            if endpoint is None:
                endpoint = self._endpoints[url] = self._http.endpoint(url)
            response = await self._http.request(
                endpoint, b"GET", None, headers, timeout=self._timeout
            )
        except HttpTimeout:
            return f"{url} did not answer within {self._timeout:g}s"
        except InvalidURL as exc:
            return redact(f"cannot reach {url}: {exc}", api_key)
        except HttpError as exc:
            return redact(f"cannot reach {url}: {type(exc).__name__}: {exc}", api_key)
        status = response.status
        if 200 <= status < 300:
            return None
        if status in (401, 403):
            return f"{url} answered {status}: the API key is missing or rejected"
        return f"{url} answered {status} {response.reason}".rstrip()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
