"""The GitHub REST client over real HTTP against the fake GitHub API (a Starlette app in a
uvicorn thread): pull requests, the 422 duplicate, retries on 5xx and rate limits, clear
permanent errors, owner/repo from remote URLs, and the token never in a message or log."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "promote"))
from fake_github import FakeGitHub, serve

from llmops.adapters.github import (
    FakePullRequests,
    GitHubClient,
    GitHubRepo,
    PullRequests,
    client_from_env,
    parse_github_remote,
)
from llmops.domain.errors import Permanent, PullRequestExists, Retryable

REPO = GitHubRepo("github.com", "acme", "llm-apps")


@pytest.fixture(scope="module")
def api() -> Iterator[FakeGitHub]:
    with serve(FakeGitHub()) as fake:
        yield fake


@pytest.fixture
def fake(api: FakeGitHub) -> FakeGitHub:
    api.requests.clear()
    api.pulls.clear()
    api.fail_next.clear()
    return api


def client(
    fake: FakeGitHub, token: str | None = None, **kw: object
) -> tuple[GitHubClient, list[float]]:
    slept: list[float] = []
    made = GitHubClient(REPO, token or fake.token, fake.url, sleep=slept.append, **kw)  # type: ignore[arg-type]
    return made, slept


def test_open_find_and_comment(fake: FakeGitHub) -> None:
    gh, _ = client(fake)
    pull = gh.open(head="llmops/promote/test/app", base="main", title="promote app", body="## body")
    assert (pull.number, pull.head, pull.base) == (1, "llmops/promote/test/app", "main")
    assert pull.url == "https://github.com/acme/llm-apps/pull/1"
    sent = fake.requests[-1]
    assert sent.path == "/repos/acme/llm-apps/pulls" and sent.json["body"] == "## body"
    assert sent.headers["accept"] == "application/vnd.github+json"
    assert sent.headers["user-agent"].startswith("llmops/")
    assert gh.find_open("llmops/promote/test/app") == pull
    assert fake.requests[-1].query == {
        "head": "acme:llmops/promote/test/app",
        "state": "open",
        "per_page": "10",
    }
    assert gh.find_open("llmops/promote/prod/app") is None
    gh.comment(1, "gate passed")
    assert fake.comments[-1] == {"number": 1, "body": "gate passed"}


def test_a_duplicate_pull_request_is_its_own_error(fake: FakeGitHub) -> None:
    gh, _ = client(fake)
    gh.open(head="b", base="main", title="t", body="")
    with pytest.raises(PullRequestExists) as info:
        gh.open(head="b", base="main", title="t", body="")
    assert isinstance(info.value, Permanent)
    assert "A pull request already exists for acme:b" in info.value.message
    assert "POST /repos/acme/llm-apps/pulls → 422" in info.value.message


def test_a_bad_token_is_permanent_and_never_shown(
    fake: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "ghp_wrong_but_secret_123"
    gh, slept = client(fake, token=secret)
    with caplog.at_level(logging.DEBUG), pytest.raises(Permanent) as info:
        gh.open(head="b", base="main", title="t", body="")
    assert "401" in info.value.message and "GITHUB_TOKEN" in info.value.message
    assert slept == []  # not retried
    for text in (info.value.message, repr(gh), caplog.text, str(info.value.__cause__)):
        assert secret not in text


def test_server_errors_are_retried(fake: FakeGitHub, caplog: pytest.LogCaptureFixture) -> None:
    fake.fail_next += [
        (502, {"message": "Server Error"}, {}),
        (503, {"message": "Unavailable"}, {}),
    ]
    gh, slept = client(fake)
    with caplog.at_level(logging.WARNING):
        pull = gh.open(head="b", base="main", title="t", body="")
    assert pull.number == 1 and len(slept) == 2
    assert "retry 1/3" in caplog.text and fake.token not in caplog.text


def test_secondary_rate_limit_is_waited_out(fake: FakeGitHub) -> None:
    body = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."}
    fake.fail_next.append((403, body, {"retry-after": "2"}))
    gh, slept = client(fake)
    assert gh.open(head="b", base="main", title="t", body="").number == 1
    assert slept[0] >= 2


def test_a_long_rate_limit_is_handed_back(fake: FakeGitHub) -> None:
    fake.fail_next.append((429, {"message": "API rate limit exceeded"}, {"retry-after": "3600"}))
    gh, slept = client(fake)
    with pytest.raises(Retryable) as info:
        gh.open(head="b", base="main", title="t", body="")
    assert info.value.delay == 3600 and slept == []


def test_persistent_server_errors_end_retryable(fake: FakeGitHub) -> None:
    fake.fail_next += [(500, {"message": "boom"}, {})] * 3
    gh, slept = client(fake, max_attempts=3)
    with pytest.raises(
        Retryable, match=r"server error \(POST /repos/acme/llm-apps/pulls → 500: boom\)"
    ):
        gh.open(head="b", base="main", title="t", body="")
    assert len(slept) == 2


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (403, {"message": "Resource not accessible by integration"}, "pull-requests: write"),
        (404, {"message": "Not Found"}, "no repository acme/llm-apps"),
        (
            422,
            {"message": "Validation Failed", "errors": [{"message": "base is invalid"}]},
            "base is invalid",
        ),
    ],
)
def test_clear_permanent_errors(
    fake: FakeGitHub, status: int, body: dict[str, object], words: str
) -> None:
    fake.fail_next.append((status, body, {}))
    gh, slept = client(fake)
    with pytest.raises(Permanent) as info:
        gh.open(head="b", base="main", title="t", body="")
    assert not isinstance(info.value, Retryable | PullRequestExists)
    assert words in info.value.message and slept == []


def test_an_unreachable_api_is_retryable() -> None:
    gh = GitHubClient(REPO, "t", "http://127.0.0.1:9", sleep=lambda s: None, max_attempts=2)
    with pytest.raises(Retryable, match="could not be reached"):
        gh.find_open("b")


@pytest.mark.parametrize(
    ("url", "slug", "host"),
    [
        ("https://github.com/acme/llm-apps.git", "acme/llm-apps", "github.com"),
        ("https://github.com/acme/llm-apps", "acme/llm-apps", "github.com"),
        (
            "https://x-access-token:ghs_1@github.com/acme/llm-apps.git",
            "acme/llm-apps",
            "github.com",
        ),
        ("git@github.com:acme/llm-apps.git", "acme/llm-apps", "github.com"),
        ("ssh://git@github.com/acme/llm-apps.git", "acme/llm-apps", "github.com"),
        ("ssh://git@ghe.example.com:2222/team/app", "team/app", "ghe.example.com"),
    ],
)
def test_parse_github_remote(url: str, slug: str, host: str) -> None:
    found = parse_github_remote(url)
    assert found is not None and (found.slug, found.host) == (slug, host)


@pytest.mark.parametrize("url", ["/srv/git/app.git", "file:///srv/app.git", "https://h/only-one"])
def test_parse_github_remote_refuses_other_urls(url: str) -> None:
    assert parse_github_remote(url) is None


def test_client_from_env() -> None:
    assert client_from_env("https://github.com/a/b.git", {}) is None
    made = client_from_env(
        "/srv/git/app.git",
        {"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "o/r", "GITHUB_API_URL": "http://api.local/"},
    )
    assert made is not None and made.repo.slug == "o/r" and made.api_url == "http://api.local"
    with pytest.raises(Permanent, match="GITHUB_REPOSITORY"):
        client_from_env("/srv/git/app.git", {"GITHUB_TOKEN": "t"})


def test_the_fake_keeps_the_protocol() -> None:
    pulls: PullRequests = FakePullRequests()
    opened = pulls.open(head="h", base="main", title="t", body="b")
    assert pulls.find_open("h") == opened
    with pytest.raises(PullRequestExists):
        pulls.open(head="h", base="main", title="t", body="b")
