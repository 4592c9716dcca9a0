"""The GitHub REST API for promotion pull requests, through httpx.

Called by ``llmops.ops.promote``: open a pull request (``POST /repos/{o}/{r}/pulls``), find
the open one for a head branch, comment on one. ``PullRequests`` is the protocol,
``GitHubClient`` the real client and ``FakePullRequests`` the in-memory fake beside it.

Retries (bounded, with backoff and jitter, honouring ``Retry-After`` and
``x-ratelimit-reset``): 5xx, network errors, 429, and 403 for a secondary or exhausted
rate limit. Clear ``Permanent`` errors: 401 (the token), 403 (its permissions), 404 (the
repository), 422 (validation; "a pull request already exists" is
``PullRequestExists``). The token goes only into the Authorization header: never into
a message, a log line or an exception.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from llmops import __version__
from llmops.adapters.retry import backoff_delay, parse_retry_after
from llmops.domain.errors import Permanent, PullRequestExists, Retryable

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
#: Longest wait for a rate limit we sit out; longer ones raise ``Retryable(delay)``.
MAX_WAIT = 60.0


@dataclass(frozen=True, slots=True)
class GitHubRepo:
    """Where a repository lives on GitHub (or GitHub Enterprise)."""

    host: str
    owner: str
    name: str

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.name}"

    def compare_url(self, base: str, head: str) -> str:
        return f"https://{self.host}/{self.slug}/compare/{base}...{head}?expand=1"


_SCP = re.compile(r"^(?:[^@/\s]+@)?(?P<host>[^:/\s]+):(?P<path>[^/\s].*)$")
_URL = re.compile(r"^(?:https?|ssh|git)://(?:[^@/\s]+@)?(?P<host>[^/:\s]+)(?::\d+)?/(?P<path>.+)$")


def parse_github_remote(url: str) -> GitHubRepo | None:
    """owner/repo from ``https://[user:token@]host/o/r(.git)``, ``git@host:o/r(.git)`` or
    ``ssh://git@host[:port]/o/r(.git)``; None for anything else (a local path)."""
    url = url.strip()
    match = _URL.match(url) or (None if "://" in url else _SCP.match(url))
    if match is None:
        return None
    parts = [p for p in match.group("path").removesuffix("/").removesuffix(".git").split("/") if p]
    if len(parts) != 2:
        return None
    return GitHubRepo(match.group("host"), parts[0], parts[1])


@dataclass(frozen=True, slots=True)
class PullRequest:
    """An open (or just opened) pull request."""

    number: int
    url: str
    head: str
    base: str
    state: str = "open"


class PullRequests(Protocol):
    """What promotion asks of a code host."""

    def open(self, *, head: str, base: str, title: str, body: str) -> PullRequest: ...
    def find_open(self, head: str) -> PullRequest | None: ...
    def comment(self, number: int, body: str) -> None: ...


def _message(response: httpx.Response) -> tuple[str, list[str]]:
    """GitHub's ``message`` and the messages of its ``errors`` list."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase, []
    if not isinstance(data, dict):
        return response.reason_phrase, []
    details = []
    for error in data.get("errors") or []:
        if isinstance(error, dict):
            details.append(str(error.get("message") or error.get("code") or error))
        else:
            details.append(str(error))
    return str(data.get("message") or response.reason_phrase), details


class GitHubClient:
    """A small GitHub REST client for one repository."""

    def __init__(
        self,
        repo: GitHubRepo,
        token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        max_attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.repo = repo
        self.api_url = api_url.rstrip("/")
        self.max_attempts = max_attempts
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._client = httpx.Client(
            base_url=self.api_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": f"llmops/{__version__}",
            },
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:  # never the token
        return f"GitHubClient({self.repo.slug!r}, api_url={self.api_url!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # calls -------------------------------------------------------------------
    def open(self, *, head: str, base: str, title: str, body: str) -> PullRequest:
        path = f"/repos/{self.repo.slug}/pulls"
        payload = {
            "title": title,
            "head": head,
            "base": base,
            "body": body,
            "maintainer_can_modify": True,
        }
        return self._pull(self._request("POST", path, json=payload).json())

    def find_open(self, head: str) -> PullRequest | None:
        path = f"/repos/{self.repo.slug}/pulls"
        params = {"head": f"{self.repo.owner}:{head}", "state": "open", "per_page": "10"}
        found = self._request("GET", path, params=params).json()
        if not isinstance(found, list) or not found:
            return None
        return self._pull(found[0])

    def comment(self, number: int, body: str) -> None:
        self._request(
            "POST", f"/repos/{self.repo.slug}/issues/{number}/comments", json={"body": body}
        )

    @staticmethod
    def _pull(data: Any) -> PullRequest:
        try:
            return PullRequest(
                number=int(data["number"]),
                url=str(data["html_url"]),
                head=str(data["head"]["ref"]),
                base=str(data["base"]["ref"]),
                state=str(data.get("state", "open")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise Permanent(
                f"GitHub answered with an unexpected pull request shape ({exc})"
            ) from None

    # transport ---------------------------------------------------------------
    def _request(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, str] | None = None
    ) -> httpx.Response:
        what = f"{method} {path}"
        last: Retryable | None = None
        for attempt in range(self.max_attempts):
            try:
                response = self._client.request(method, path, json=json, params=params)
            except httpx.TimeoutException as exc:
                last = Retryable(f"GitHub {what} timed out ({type(exc).__name__})", delay=2.0)
            except httpx.TransportError as exc:
                last = Retryable(
                    f"GitHub API at {self.api_url} could not be reached for {what} "
                    f"({type(exc).__name__}: {exc})",
                    delay=2.0,
                )
            else:
                if response.status_code < 400:
                    return response
                failure = self._failure(what, response)
                if not isinstance(failure, Retryable):
                    raise failure
                last = failure
            if attempt + 1 >= self.max_attempts or last.delay > MAX_WAIT:
                break
            delay = max(last.delay, backoff_delay(attempt, 0.5, 8.0, self._rng))
            log.warning(
                "%s; retry %d/%d in %.1fs", last.message, attempt + 1, self.max_attempts - 1, delay
            )
            self._sleep(delay)
        assert last is not None
        raise last

    def _failure(self, what: str, response: httpx.Response) -> Exception:
        status = response.status_code
        message, details = _message(response)
        said = message + (f" ({'; '.join(details)})" if details else "")
        tail = f"({what} → {status}: {said})"
        lowered = said.lower()
        headers = response.headers
        retry_after = parse_retry_after(headers.get("retry-after"))
        if status == 429 or (
            status == 403
            and ("rate limit" in lowered or headers.get("x-ratelimit-remaining") == "0")
        ):
            delay = retry_after
            if delay is None and headers.get("x-ratelimit-reset", "").isdigit():
                reset = int(headers["x-ratelimit-reset"])
                delay = max(0.0, reset - datetime.now(UTC).timestamp())
            if delay is None:
                delay = 60.0 if "secondary" in lowered else 5.0
            return Retryable(f"GitHub rate limit: wait {delay:.0f}s and retry {tail}", delay=delay)
        if status >= 500:
            return Retryable(f"GitHub had a server error {tail}", delay=retry_after or 1.0)
        if status == 401:
            return Permanent(f"GitHub rejected the token: set GITHUB_TOKEN to a valid token {tail}")
        if status == 403:
            return Permanent(
                f"GitHub refused: the token needs contents: write and pull-requests: write on "
                f"{self.repo.slug} {tail}"
            )
        if status == 404:
            return Permanent(
                f"GitHub has no repository {self.repo.slug}, or the token cannot see it {tail}"
            )
        if status == 422 and "already exists" in lowered:
            return PullRequestExists(f"a pull request for this branch is already open {tail}")
        return Permanent(f"GitHub refused the request {tail}")


def client_from_env(
    remote_url: str, environ: Mapping[str, str], **options: Any
) -> GitHubClient | None:
    """A client when ``GITHUB_TOKEN`` is set, for the repository the remote URL names
    (else ``GITHUB_REPOSITORY``); None without a token. ``GITHUB_API_URL`` picks the API."""
    token = environ.get("GITHUB_TOKEN", "").strip()
    if not token:
        return None
    repo = parse_github_remote(remote_url)
    if repo is None and "/" in environ.get("GITHUB_REPOSITORY", ""):
        owner, _, name = environ["GITHUB_REPOSITORY"].partition("/")
        repo = GitHubRepo("github.com", owner, name)
    if repo is None:
        raise Permanent(
            "GITHUB_TOKEN is set but the remote URL names no GitHub repository; set "
            "GITHUB_REPOSITORY=owner/repo"
        )
    return GitHubClient(repo, token, environ.get("GITHUB_API_URL") or DEFAULT_API_URL, **options)


# --------------------------------------------------------------------------- the fake


@dataclass
class FakePullRequests:
    """In-memory ``PullRequests``: records what was opened; 422 on a duplicate head."""

    slug: str = "acme/llm-apps"
    pulls: list[PullRequest] = field(default_factory=list)
    bodies: dict[int, str] = field(default_factory=dict)
    comments: list[tuple[int, str]] = field(default_factory=list)
    fail_with: Exception | None = None

    def open(self, *, head: str, base: str, title: str, body: str) -> PullRequest:
        if self.fail_with is not None:
            raise self.fail_with
        if self.find_open(head) is not None:
            raise PullRequestExists(f"a pull request for {head} is already open")
        number = len(self.pulls) + 1
        pull = PullRequest(number, f"https://github.com/{self.slug}/pull/{number}", head, base)
        self.pulls.append(pull)
        self.bodies[number] = body
        return pull

    def find_open(self, head: str) -> PullRequest | None:
        return next((p for p in self.pulls if p.head == head and p.state == "open"), None)

    def comment(self, number: int, body: str) -> None:
        self.comments.append((number, body))
