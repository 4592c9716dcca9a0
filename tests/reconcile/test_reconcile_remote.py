"""A repository with a remote (a local bare repository): a pass fetches and fast-forwards
first, pushes commit-mode promotions, and proposes pull-request ones by pushing the
promotion branch (without GITHUB_TOKEN the body is written for a person to open the
pull request); the next pass sees the proposal in flight and does nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from recon_helpers import archive_of, git, make_repo, stop_targets

from llmops.domain.errors import LlmopsError
from llmops.ops.reconcile import ReconcileOptions, ReconcileWorld, reconcile_pass
from llmops.promote.pins import read_pin
from llmops.reconcile import conditions as c
from llmops.stub.runner import StubServer


def _with_remote(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The example pushed to a bare remote, and the reconciler's clone of it."""
    seed = make_repo(tmp_path / "seed")
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "-b", "main", str(bare))
    git(seed, "remote", "add", "origin", str(bare))
    git(seed, "push", "--quiet", "-u", "origin", "main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", str(bare), str(clone))
    for key, value in (("user.name", "Reconciler"), ("user.email", "r@example.com")):
        git(clone, "config", key, value)
    return seed, bare, clone


def test_promotions_go_to_the_remote(tmp_path: Path, stub: StubServer) -> None:
    seed, bare, clone = _with_remote(tmp_path)
    # someone else pushes a commit the reconciler has not seen
    readme = seed / "NOTES.md"
    readme.write_text("notes\n")
    git(seed, "add", "NOTES.md")
    git(seed, "commit", "--quiet", "-m", "notes")
    git(seed, "push", "--quiet", "origin", "main")
    world = ReconcileWorld(environ={})
    options = ReconcileOptions(model_url=stub.url, timeout=60)
    try:
        result = reconcile_pass(clone, options, world)

        assert result.ok, result.to_json()
        assert any(note.startswith("fast-forwarded main") for note in result.notes)
        assert (clone / "NOTES.md").is_file()
        remote_test = git(bare, "show", "main:environments/test.yaml")
        test_bot = result.stage("test").app("support-bot")  # type: ignore[union-attr]
        assert test_bot is not None and test_bot.phase == "Ready"
        assert read_pin(remote_test, "support-bot") == test_bot.live
        # prod is promoted by pull request: the branch is pushed, the body written
        prod_bot = result.stage("prod").app("support-bot")  # type: ignore[union-attr]
        assert prod_bot is not None
        cond = prod_bot.condition(c.PROMOTED)
        assert cond is not None and cond.reason == c.PROPOSED and cond.status == "Unknown"
        assert "GITHUB_TOKEN is not set" in cond.message
        branches = git(bare, "branch", "--list", "llmops/*")
        assert "llmops/promote/prod/support-bot" in branches
        assert (clone / ".llmops" / "pr" / "prod-support-bot.md").is_file()
        assert read_pin(git(bare, "show", "main:environments/prod.yaml"), "support-bot") is None
        proposed = [
            e for e in archive_of(clone).entries() if e.event == "promoted" and e.env == "prod"
        ]
        assert proposed and all(e.data["state"] == "proposed" for e in proposed)
        assert git(clone, "status", "--porcelain", "--untracked-files=no") == ""

        # the proposal is in flight: the next pass waits and changes nothing
        ledger = len(archive_of(clone).entries())
        again = reconcile_pass(clone, options, ReconcileWorld(environ={}, use_memo=False))
        prod_again = again.stage("prod").app("support-bot")  # type: ignore[union-attr]
        assert prod_again is not None
        cond = prod_again.condition(c.PROMOTED)
        assert cond is not None and cond.reason == "PromotionBranchExists", cond
        assert again.noop and len(archive_of(clone).entries()) == ledger
    finally:
        stop_targets(clone)


def test_a_diverged_branch_stops_the_pass(tmp_path: Path) -> None:
    seed = make_repo(tmp_path / "seed")
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "-b", "main", str(bare))
    git(seed, "remote", "add", "origin", str(bare))
    git(seed, "push", "--quiet", "-u", "origin", "main")
    (seed / "LOCAL.md").write_text("local only\n")
    git(seed, "add", "LOCAL.md")
    git(seed, "commit", "--quiet", "-m", "local")
    other = tmp_path / "other"
    git(tmp_path, "clone", "--quiet", str(bare), str(other))
    (other / "REMOTE.md").write_text("remote\n")
    subprocess.run(["git", "add", "REMOTE.md"], cwd=other, check=True)
    subprocess.run(
        ["git", "-c", "user.name=o", "-c", "user.email=o@example.com", "commit", "-qm", "remote"],
        cwd=other,
        check=True,
    )
    git(other, "push", "--quiet", "origin", "main")
    with pytest.raises(LlmopsError, match="cannot fast-forward"):
        reconcile_pass(seed, ReconcileOptions(), ReconcileWorld(environ={}))
    assert not (seed / ".llmops" / "archive").exists()


def test_a_pass_opens_pull_requests_with_the_code_host_client_and_closes_it(
    tmp_path: Path, stub: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmops.adapters import github

    class Recording(github.FakePullRequests):
        closed = False

        def close(self) -> None:
            self.closed = True

    made: list[Recording] = []

    def client_from_env(url: str, environ: object, **options: object) -> Recording:
        made.append(Recording())
        return made[-1]

    monkeypatch.setattr(github, "client_from_env", client_from_env)
    _, _, clone = _with_remote(tmp_path)
    world = ReconcileWorld(environ={"GITHUB_TOKEN": "a-test-token"})
    try:
        result = reconcile_pass(clone, ReconcileOptions(model_url=stub.url, timeout=60), world)
        assert result.ok, result.to_json()
        assert len(made) == 1 and made[0].closed  # one client per pass, closed at its end
        assert {p.head for p in made[0].pulls} == {
            "llmops/promote/prod/support-bot",
            "llmops/promote/prod/summarizer",
        }
    finally:
        stop_targets(clone)
