"""The git adapter on real repositories (a bare remote and clones): reading blobs exactly,
committing without touching the work tree, push rejection detection, create-only
pushes, hooks, credentials stripped from every message; and the in-memory fake keeps
the same contract."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from llmops.adapters.gitops import GitOps, GitWorkTree, MemoryGit, strip_credentials
from llmops.domain.errors import GitPushRejected, Permanent, Retryable, UsageError


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def clone(tmp: Path, bare: Path, name: str) -> Path:
    path = tmp / name
    git(tmp, "clone", "--quiet", str(bare), str(path))
    git(path, "config", "user.name", f"{name} tester")
    git(path, "config", "user.email", f"{name}@example.com")
    return path


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "-b", "main", str(bare))
    seed = clone(tmp_path, bare, "seed")
    (seed / "env").mkdir()
    (seed / "env" / "test.yaml").write_bytes(b"spec:\r\n  releases: {}\r\n\r\n")
    (seed / "run.sh").write_text("#!/bin/sh\n")
    (seed / "run.sh").chmod(0o755)
    git(seed, "add", "-A")
    git(seed, "commit", "--quiet", "-m", "seed")
    git(seed, "push", "--quiet", "origin", "HEAD:main")
    git(seed, "branch", "--quiet", "-u", "origin/main")
    return bare, seed


def test_read_file_is_byte_exact(world: tuple[Path, Path]) -> None:
    _, seed = world
    ops = GitWorkTree(seed / "env")  # any path inside the work tree
    assert ops.toplevel() == seed
    assert ops.read_file("HEAD", "env/test.yaml") == b"spec:\r\n  releases: {}\r\n\r\n"
    assert ops.read_file("HEAD", "env/nope.yaml") is None


def test_commit_file_leaves_the_work_tree_and_index_alone(world: tuple[Path, Path]) -> None:
    _, seed = world
    (seed / "scratch.txt").write_text("staged but not ours\n")
    git(seed, "add", "scratch.txt")
    ops = GitWorkTree(seed)
    head = ops.head()
    sha = ops.commit_file(
        head, "run.sh", b"#!/bin/sh\necho hi\n", "change run.sh\n\nLlmops-App: x\n"
    )
    assert ops.head() == head  # the branch did not move
    assert git(seed, "status", "--porcelain") == "A  scratch.txt"
    assert git(seed, "rev-parse", f"{sha}^") == head
    assert git(seed, "show", f"{sha}:run.sh") == "#!/bin/sh\necho hi"
    assert git(seed, "ls-tree", sha, "run.sh").startswith("100755 ")  # mode kept
    assert git(seed, "diff", "--name-only", head, sha) == "run.sh"  # nothing else in it
    assert git(seed, "log", "-1", "--format=%an|%(trailers:key=Llmops-App,valueonly)", sha) == (
        "seed tester|x"
    )
    ops.fast_forward(sha)
    assert (seed / "run.sh").read_text() == "#!/bin/sh\necho hi\n"
    assert (seed / "scratch.txt").exists()


def test_push_detects_someone_pushing_first(tmp_path: Path, world: tuple[Path, Path]) -> None:
    bare, seed = world
    other = clone(tmp_path, bare, "other")
    (other / "x.txt").write_text("x\n")
    git(other, "add", "x.txt")
    git(other, "commit", "--quiet", "-m", "first")
    git(other, "push", "--quiet", "origin", "HEAD:main")

    ops = GitWorkTree(seed)
    sha = ops.commit_file(ops.head(), "env/test.yaml", b"spec: {}\n", "mine")
    with pytest.raises(GitPushRejected) as info:
        ops.push("origin", sha, "main")
    assert isinstance(info.value, Retryable) and info.value.reason == "fetch first"
    assert (
        "someone pushed first" in info.value.message and "git push exited 1" in info.value.message
    )
    tip = ops.fetch("origin", "main")
    assert tip == git(bare, "rev-parse", "main")
    assert ops.commits_ahead("refs/remotes/origin/main") == 0
    ops.fast_forward(tip)
    rebased = ops.commit_file(ops.head(), "env/test.yaml", b"spec: {}\n", "mine again")
    ops.push("origin", rebased, "main")
    assert git(bare, "rev-parse", "main") == rebased


def test_create_only_push_refuses_an_existing_branch(world: tuple[Path, Path]) -> None:
    _, seed = world
    ops = GitWorkTree(seed)
    sha = ops.commit_file(ops.head(), "env/test.yaml", b"a\n", "proposal")
    assert not ops.remote_branch_exists("origin", "llmops/promote/test/app")
    ops.push("origin", sha, "llmops/promote/test/app", create_only=True)
    assert ops.remote_branch_exists("origin", "llmops/promote/test/app")
    again = ops.commit_file(ops.head(), "env/test.yaml", b"b\n", "second proposal")
    with pytest.raises(GitPushRejected) as info:
        ops.push("origin", again, "llmops/promote/test/app", create_only=True)
    assert info.value.reason == "stale info" and "already exists" in info.value.message
    ops.delete_remote_branch("origin", "llmops/promote/test/app", sha)
    assert not ops.remote_branch_exists("origin", "llmops/promote/test/app")


def test_a_hook_refusal_is_permanent(world: tuple[Path, Path]) -> None:
    bare, seed = world
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'GH006: Protected branch update failed' >&2\nexit 1\n")
    hook.chmod(0o755)
    ops = GitWorkTree(seed)
    sha = ops.commit_file(ops.head(), "env/test.yaml", b"a\n", "x")
    with pytest.raises(Permanent) as info:
        ops.push("origin", sha, "main")
    assert not isinstance(info.value, Retryable)
    assert "pre-receive hook declined" in info.value.message
    assert "GH006" in info.value.message  # the remote's own words end the message


def test_credentials_never_reach_a_message(world: tuple[Path, Path]) -> None:
    _, seed = world
    git(seed, "remote", "add", "secret", "http://deploy:s3cr3t-token@127.0.0.1:9/acme/app.git")
    ops = GitWorkTree(seed)
    with pytest.raises(Retryable) as info:
        ops.fetch("secret", "main")
    assert "s3cr3t" not in info.value.message and "could not be reached" in info.value.message
    sha = ops.commit_file(ops.head(), "env/test.yaml", b"a\n", "x")
    with pytest.raises(Retryable) as pushed:
        ops.push("secret", sha, "main")
    assert "s3cr3t" not in pushed.value.message
    assert "http://127.0.0.1:9/acme/app.git" in pushed.value.message


def test_strip_credentials() -> None:
    assert strip_credentials("https://x-access-token:ghs_abc@github.com/o/r.git") == (
        "https://github.com/o/r.git"
    )
    assert strip_credentials("fatal: unable to access 'https://u:p@h/x/': boom") == (
        "fatal: unable to access 'https://h/x/': boom"
    )
    assert strip_credentials("git@github.com:o/r.git") == "git@github.com:o/r.git"


def test_errors_for_people(tmp_path: Path, world: tuple[Path, Path]) -> None:
    _, seed = world
    with pytest.raises(UsageError, match="not inside a git repository"):
        GitWorkTree(tmp_path / "nowhere")
    ops = GitWorkTree(seed)
    with pytest.raises(UsageError, match="no git remote named 'upstream'"):
        ops.remote_url("upstream")
    with pytest.raises(UsageError, match="does not exist on origin"):
        ops.fetch("origin", "release-9")
    git(seed, "checkout", "--quiet", "--detach")
    assert ops.current_branch() is None


def test_an_unknown_committer_is_told_what_to_set(world: tuple[Path, Path]) -> None:
    _, seed = world
    for key in ("user.name", "user.email"):
        git(seed, "config", "--unset", key)
    git(seed, "config", "user.useConfigOnly", "true")
    ops = GitWorkTree(seed)
    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    ops.repo.git.update_environment(**env)
    with pytest.raises(Permanent, match=r"set user\.name and user\.email"):
        ops.commit_file(ops.head(), "env/test.yaml", b"a\n", "x")


# --------------------------------------------------------------------------- one contract


def _contract(ops: GitOps, advance: object) -> None:
    head = ops.head()
    sha = ops.commit_file(head, "env/test.yaml", b"one\n", "one")
    assert ops.read_file(sha, "env/test.yaml") == b"one\n"
    assert callable(advance)
    advance()
    with pytest.raises(GitPushRejected):
        ops.push("origin", sha, "main")
    tip = ops.fetch("origin", "main")
    ops.fast_forward(tip)
    again = ops.commit_file(ops.head(), "env/test.yaml", b"two\n", "two")
    ops.push("origin", again, "main")
    ops.push("origin", again, "llmops/x", create_only=True)
    with pytest.raises(GitPushRejected):
        ops.push("origin", again, "llmops/x", create_only=True)
    assert ops.remote_branch_exists("origin", "llmops/x")


def test_the_fake_keeps_the_real_contract(tmp_path: Path, world: tuple[Path, Path]) -> None:
    bare, seed = world
    other = clone(tmp_path, bare, "other")

    def push_from_other() -> None:
        (other / "y.txt").write_text("y\n")
        git(other, "add", "y.txt")
        git(other, "commit", "--quiet", "-m", "other")
        git(other, "push", "--quiet", "origin", "HEAD:main")

    _contract(GitWorkTree(seed), push_from_other)
    fake = MemoryGit({"env/test.yaml": b"zero\n"})
    _contract(fake, lambda: fake.advance_remote("y.txt", b"y\n"))
