"""A fake GitHub REST API for promotion tests: a small Starlette app served by uvicorn in a
background thread on 127.0.0.1.

It records every request, checks the ``Authorization: Bearer <token>`` header (401 with
GitHub's JSON otherwise), answers ``POST/GET /repos/{o}/{r}/pulls`` and ``POST
/repos/{o}/{r}/issues/{n}/comments`` with realistic JSON, 422 "A pull request already
exists" for a second open PR on one head, and can be told to fail the next requests
(``fail_next``) with any status, body and headers (5xx, rate limits).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DOCS = "https://docs.github.com/rest"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


@dataclass
class FakeGitHub:
    token: str = "ghp_test_token_0123456789"
    requests: list[Recorded] = field(default_factory=list)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/repos/{owner}/{repo}/pulls", self._pulls, methods=["GET", "POST"]),
                Route(
                    "/repos/{owner}/{repo}/issues/{number:int}/comments",
                    self._comment,
                    methods=["POST"],
                ),
            ]
        )

    async def _record(self, request: Request) -> JSONResponse | None:
        body = await request.body()
        import json

        self.requests.append(
            Recorded(
                request.method,
                request.url.path,
                dict(request.query_params),
                {k.lower(): v for k, v in request.headers.items()},
                json.loads(body) if body else None,
            )
        )
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(
                {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}, 401
            )
        if self.fail_next:
            status, payload, headers = self.fail_next.pop(0)
            return JSONResponse(payload, status, headers=headers)
        return None

    def _pull_json(self, owner: str, repo: str, pull: dict[str, Any]) -> dict[str, Any]:
        number = pull["number"]
        return {
            "url": f"{self.url}/repos/{owner}/{repo}/pulls/{number}",
            "id": 1000 + number,
            "node_id": f"PR_kw{number}",
            "html_url": f"https://github.com/{owner}/{repo}/pull/{number}",
            "number": number,
            "state": pull["state"],
            "locked": False,
            "title": pull["title"],
            "body": pull["body"],
            "user": {"login": "llmops-bot", "id": 1, "type": "Bot"},
            "draft": False,
            "head": {"label": f"{owner}:{pull['head']}", "ref": pull["head"], "sha": "0" * 40},
            "base": {"label": f"{owner}:{pull['base']}", "ref": pull["base"], "sha": "1" * 40},
            "created_at": "2024-05-01T12:00:00Z",
            "merged": False,
            "mergeable": None,
        }

    async def _pulls(self, request: Request) -> JSONResponse:
        failure = await self._record(request)
        if failure is not None:
            return failure
        owner, repo = request.path_params["owner"], request.path_params["repo"]
        if request.method == "GET":
            head = request.query_params.get("head", "")
            state = request.query_params.get("state", "open")
            found = [
                self._pull_json(owner, repo, p)
                for p in self.pulls
                if (not head or f"{owner}:{p['head']}" == head)
                and (state == "all" or p["state"] == state)
            ]
            return JSONResponse(found)
        data = self.requests[-1].json or {}
        missing = [k for k in ("title", "head", "base") if not data.get(k)]
        if missing:
            return JSONResponse(
                {
                    "message": "Validation Failed",
                    "errors": [
                        {"resource": "PullRequest", "field": k, "code": "missing_field"}
                        for k in missing
                    ],
                    "documentation_url": f"{DOCS}/pulls/pulls#create-a-pull-request",
                    "status": "422",
                },
                422,
            )
        if any(p["head"] == data["head"] and p["state"] == "open" for p in self.pulls):
            return JSONResponse(
                {
                    "message": "Validation Failed",
                    "errors": [
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {owner}:{data['head']}.",
                        }
                    ],
                    "documentation_url": f"{DOCS}/pulls/pulls#create-a-pull-request",
                    "status": "422",
                },
                422,
            )
        pull = {
            "number": len(self.pulls) + 1,
            "state": "open",
            "title": data["title"],
            "body": data.get("body", ""),
            "head": data["head"],
            "base": data["base"],
        }
        self.pulls.append(pull)
        return JSONResponse(self._pull_json(owner, repo, pull), 201)

    async def _comment(self, request: Request) -> JSONResponse:
        failure = await self._record(request)
        if failure is not None:
            return failure
        data = self.requests[-1].json or {}
        self.comments.append({"number": request.path_params["number"], "body": data.get("body")})
        return JSONResponse({"id": len(self.comments), "body": data.get("body")}, 201)


@contextlib.contextmanager
def serve(fake: FakeGitHub) -> Iterator[FakeGitHub]:
    """Run ``fake`` on 127.0.0.1 (a free port) until the block ends; ``fake.url`` is set."""
    config = uvicorn.Config(
        fake.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-github", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake GitHub API did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=10)
