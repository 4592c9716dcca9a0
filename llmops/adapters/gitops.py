"""Git for promotion and rollback, through gitpython running the git CLI.

Called by ``llmops.ops.promote``. What it does: read a file at a revision, commit one
file change on top of a given parent *without touching the work tree or the index*
(``hash-object``, a temporary index, ``commit-tree``), push a commit to a branch with
rejection detection (``--porcelain``; create-only pushes use ``--force-with-lease=ref:``),
fetch one branch, fast-forward the checked-out branch, ask whether a remote branch
exists, delete one. ``GitOps`` is the protocol; ``GitWorkTree`` the real thing and
``MemoryGit`` the in-memory fake beside it.

Every failure becomes an ``llmops.domain.errors`` error: ``GitPushRejected`` (the remote
moved: fetch, rebase, retry), ``Retryable`` (network, timeout), ``Permanent`` (no
access, a hook or branch protection refused, missing remote). Messages end with the git
command's exit status and output, and every URL in them has its credentials stripped.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import git

from llmops.adapters.gitplumbing import scrub
from llmops.domain.errors import GitPushRejected, Permanent, Retryable, UsageError

#: Seconds a network command (fetch, push, ls-remote) may take before it is killed.
NETWORK_TIMEOUT = 120.0

_NETWORK = (
    "could not resolve host",
    "connection refused",
    "connection timed out",
    "operation timed out",
    "timeout:",
    "network is unreachable",
    "connection reset",
    "early eof",
    "failed to connect",
    "couldn't connect",
    "the requested url returned error: 5",
    "http 5",
    "gnutls",
    "ssl_error",
    "rpc failed",
)
_ACCESS = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "permission denied",
    "invalid username or password",
    "returned error: 401",
    "returned error: 403",
    "repository not found",
    "does not appear to be a git repository",
    "could not read from remote repository",
)

#: ``[remote rejected]`` reasons that mean another push updated the ref at the same moment.
_LOST_RACE = ("failed to update ref", "cannot lock ref", "incorrect old value", "failed to lock")


def strip_credentials(text: str) -> str:
    """``https://user:token@host/x`` → ``https://host/x``, anywhere in ``text``."""
    return scrub(text)


def _tail(output: str, limit: int = 600) -> str:
    text = strip_credentials(" ".join(output.split()))
    return text if len(text) <= limit else "…" + text[-limit:]


class GitOps(Protocol):
    """The git operations promotion needs (one work tree and its remotes)."""

    def toplevel(self) -> Path: ...
    def current_branch(self) -> str | None: ...
    def head(self) -> str: ...
    def remote_url(self, remote: str) -> str: ...
    def read_file(self, rev: str, path: str) -> bytes | None: ...
    def is_dirty(self, path: str) -> bool: ...
    def commits_ahead(self, upstream: str) -> int: ...
    def commit_file(self, parent: str, path: str, data: bytes, message: str) -> str: ...
    def push(self, remote: str, commit: str, branch: str, *, create_only: bool = False) -> None: ...
    def fetch(self, remote: str, branch: str) -> str: ...
    def fast_forward(self, commit: str) -> None: ...
    def remote_branch_exists(self, remote: str, branch: str) -> bool: ...
    def delete_remote_branch(self, remote: str, branch: str, expected: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Run:
    status: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return (self.err + " " + self.out).strip()


class GitWorkTree:
    """A real work tree (the one containing ``path``)."""

    def __init__(self, path: Path) -> None:
        try:
            self.repo = git.Repo(path, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise UsageError(
                f"{path} is not inside a git repository; promotion and rollback commit to git"
            ) from None
        if self.repo.working_tree_dir is None:
            raise UsageError(f"{path} is a bare repository; run llmops in a work tree")
        self._top = Path(self.repo.working_tree_dir)

    def __repr__(self) -> str:
        return f"GitWorkTree({str(self._top)!r})"

    # plumbing ----------------------------------------------------------------
    def _git(
        self,
        *args: str,
        network: bool = False,
        env: dict[str, str] | None = None,
        binary: bool = False,
    ) -> tuple[int, str | bytes, str]:
        extra = {"GIT_TERMINAL_PROMPT": "0", **(env or {})}
        try:
            status, out, err = self.repo.git.execute(
                ["git", *args],
                with_extended_output=True,
                with_exceptions=False,
                kill_after_timeout=NETWORK_TIMEOUT if network else None,
                env=extra,
                stdout_as_string=not binary,
                strip_newline_in_stdout=False,
            )
        except git.GitCommandNotFound as exc:
            raise Permanent("the git command is not installed or not on PATH") from exc
        except OSError as exc:
            raise Permanent(f"cannot run git: {exc}") from exc
        return int(status or 0), out if out is not None else "", str(err)

    def _run(self, *args: str, network: bool = False, env: dict[str, str] | None = None) -> _Run:
        status, out, err = self._git(*args, network=network, env=env)
        assert isinstance(out, str)
        return _Run(status, out.strip(), err.strip())

    def _ok(self, *args: str, network: bool = False, env: dict[str, str] | None = None) -> str:
        run = self._run(*args, network=network, env=env)
        if run.status != 0:
            raise self._error(args, run)
        return run.out

    def _error(self, args: Sequence[str], run: _Run, what: str | None = None) -> Exception:
        verb = args[0]
        text = run.output.lower()
        detail = f"(git {verb} exited {run.status}: {_tail(run.output) or 'no output'})"
        what = what or f"git {verb} failed"
        if "please tell me who you are" in text or "empty ident" in text:
            return Permanent(
                "git does not know who is committing: set user.name and user.email "
                f"(git config user.email you@example.com) {detail}"
            )
        if any(s in text for s in _ACCESS):
            return Permanent(f"{what}: no access to the remote (check credentials) {detail}")
        if any(s in text for s in _NETWORK):
            return Retryable(f"{what}: the remote could not be reached {detail}", delay=5.0)
        return Permanent(f"{what} {detail}")

    def _display(self, remote: str) -> str:
        """The remote's URL for messages: credentials stripped; its name if unknown."""
        run = self._run("config", "--get", f"remote.{remote}.url")
        return strip_credentials(run.out) if run.status == 0 and run.out else remote

    # reading -----------------------------------------------------------------
    def toplevel(self) -> Path:
        return self._top

    def current_branch(self) -> str | None:
        run = self._run("symbolic-ref", "--quiet", "--short", "HEAD")
        return run.out if run.status == 0 and run.out else None

    def head(self) -> str:
        run = self._run("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
        if run.status != 0:
            raise UsageError("the repository has no commits yet; commit the manifests first")
        return run.out

    def remote_url(self, remote: str) -> str:
        run = self._run("config", "--get", f"remote.{remote}.url")
        if run.status != 0 or not run.out:
            raise UsageError(
                f"no git remote named {remote!r}; add one (git remote add {remote} URL) "
                "or pass --remote"
            )
        return run.out

    def read_file(self, rev: str, path: str) -> bytes | None:
        status, out, _ = self._git("cat-file", "blob", f"{rev}:{path}", binary=True)
        if status != 0:
            return None
        assert isinstance(out, bytes)
        return out

    def is_dirty(self, path: str) -> bool:
        return bool(self._ok("status", "--porcelain", "--untracked-files=no", "--", path))

    def commits_ahead(self, upstream: str) -> int:
        return int(self._ok("rev-list", "--count", f"{upstream}..HEAD") or 0)

    # writing -----------------------------------------------------------------
    def commit_file(self, parent: str, path: str, data: bytes, message: str) -> str:
        mode = "100644"
        listed = self._run("ls-tree", parent, "--", path).out
        if listed:
            mode = listed.split()[0]
        with tempfile.TemporaryDirectory(prefix="llmops-commit-") as tmp:
            blob_file, msg_file = Path(tmp, "blob"), Path(tmp, "message")
            blob_file.write_bytes(data)
            msg_file.write_text(message, encoding="utf-8")
            env = {"GIT_INDEX_FILE": str(Path(tmp, "index"))}
            blob = self._ok("hash-object", "-w", "--no-filters", str(blob_file))
            self._ok("read-tree", parent, env=env)
            self._ok("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=env)
            tree = self._ok("write-tree", env=env)
            return self._ok("commit-tree", tree, "-p", parent, "-F", str(msg_file))

    def push(self, remote: str, commit: str, branch: str, *, create_only: bool = False) -> None:
        ref = f"refs/heads/{branch}"
        args = ["push", "--porcelain"]
        if create_only:
            args.append(f"--force-with-lease={ref}:")
        args += [remote, f"{commit}:{ref}"]
        run = self._run(*args, network=True)
        where = f"{self._display(remote)} {branch}"
        if run.status == 0:
            if create_only and any(line.startswith("=") for line in run.out.splitlines()):
                # the same commit is already there: the branch existed, nothing was created
                raise GitPushRejected(
                    f"push to {where} rejected: the branch already exists", "exists"
                )
            return
        for line in run.out.splitlines():
            if not line.startswith("!"):
                continue
            summary = line.split("\t")[-1]
            if "[remote rejected]" in summary and any(s in summary for s in _LOST_RACE):
                raise GitPushRejected(
                    f"push to {where} lost a race with another push ({summary}) "
                    f"(git push exited {run.status}: {_tail(run.output)})",
                    "lock",
                )
            if "[remote rejected]" in summary:
                raise Permanent(
                    f"the remote refused the push to {where}: {summary} (a protected branch or "
                    f"a hook? promote through a pull request with --mode pr) "
                    f"(git push exited {run.status}: {_tail(run.output)})"
                )
            if "[rejected]" in summary:
                reason = summary.partition("(")[2].rstrip(")") or "rejected"
                raise GitPushRejected(
                    f"push to {where} rejected ({reason}): "
                    + ("the branch already exists" if create_only else "someone pushed first")
                    + f" (git push exited {run.status}: {_tail(run.output)})",
                    reason,
                )
        raise self._error(args, run, f"git push to {where} failed")

    def fetch(self, remote: str, branch: str) -> str:
        tracking = f"refs/remotes/{remote}/{branch}"
        run = self._run(
            "fetch",
            "--no-tags",
            "--quiet",
            remote,
            f"+refs/heads/{branch}:{tracking}",
            network=True,
        )
        if run.status != 0:
            if "couldn't find remote ref" in run.output.lower():
                raise UsageError(
                    f"branch {branch} does not exist on {remote}; push it first "
                    f"(git push -u {remote} {branch})"
                )
            raise self._error(["fetch"], run, f"git fetch from {remote} failed")
        return self._ok("rev-parse", "--verify", f"{tracking}^{{commit}}")

    def fast_forward(self, commit: str) -> None:
        run = self._run("merge", "--ff-only", "--quiet", commit)
        if run.status != 0:
            raise Permanent(
                f"cannot fast-forward the checked-out branch to {commit[:12]}: local changes "
                "or commits are in the way; commit, stash or push them and run again "
                f"(git merge exited {run.status}: {_tail(run.output)})"
            )

    def remote_branch_exists(self, remote: str, branch: str) -> bool:
        run = self._run("ls-remote", "--heads", remote, f"refs/heads/{branch}", network=True)
        if run.status != 0:
            raise self._error(["ls-remote"], run, f"cannot list branches of {remote}")
        return bool(run.out.strip())

    def delete_remote_branch(self, remote: str, branch: str, expected: str) -> None:
        ref = f"refs/heads/{branch}"
        run = self._run(
            "push",
            "--porcelain",
            f"--force-with-lease={ref}:{expected}",
            remote,
            f":{ref}",
            network=True,
        )
        if run.status != 0:
            raise self._error(["push"], run, f"cannot delete branch {branch} on {remote}")


# --------------------------------------------------------------------------- the fake


def _sha(*parts: object) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()


@dataclass
class MemoryGit:
    """An in-memory ``GitOps``: one branch checked out, one remote, whole-file commits.

    Knobs: ``reject_pushes`` (the next N pushes are rejected as if someone pushed
    first), ``advance_remote()`` (someone else commits to the remote).
    """

    files: dict[str, bytes]
    branch: str = "main"
    url: str = "https://github.com/acme/llm-apps.git"
    top: Path = field(default_factory=lambda: Path("."))
    reject_pushes: int = 0
    commits: dict[str, tuple[str | None, dict[str, bytes], str]] = field(default_factory=dict)
    remote: dict[str, str] = field(default_factory=dict)
    tracking: dict[str, str] = field(default_factory=dict)
    local: str = ""
    pushes: list[tuple[str, str]] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        root = self._commit(None, dict(self.files), "initial")
        self.local = root
        self.remote[self.branch] = root
        self.tracking[self.branch] = root

    def _commit(self, parent: str | None, files: dict[str, bytes], message: str) -> str:
        sha = _sha(parent, sorted(files.items()), message, len(self.commits))
        self.commits[sha] = (parent, files, message)
        return sha

    def _ancestors(self, sha: str | None) -> set[str]:
        seen = set()
        while sha is not None:
            seen.add(sha)
            sha = self.commits[sha][0]
        return seen

    def advance_remote(self, path: str, data: bytes, message: str = "someone else") -> str:
        tip = self.remote[self.branch]
        files = {**self.commits[tip][1], path: data}
        self.remote[self.branch] = self._commit(tip, files, message)
        return self.remote[self.branch]

    def toplevel(self) -> Path:
        return self.top

    def current_branch(self) -> str | None:
        return self.branch

    def head(self) -> str:
        return self.local

    def remote_url(self, remote: str) -> str:
        return self.url

    def read_file(self, rev: str, path: str) -> bytes | None:
        sha = self.tracking.get(rev.rpartition("/")[2], rev) if rev.startswith("refs/") else rev
        return self.commits[sha][1].get(path)

    def is_dirty(self, path: str) -> bool:
        return path in self.dirty

    def commits_ahead(self, upstream: str) -> int:
        base = self.tracking[upstream.rpartition("/")[2]]
        return len(self._ancestors(self.local) - self._ancestors(base))

    def commit_file(self, parent: str, path: str, data: bytes, message: str) -> str:
        return self._commit(parent, {**self.commits[parent][1], path: data}, message)

    def push(self, remote: str, commit: str, branch: str, *, create_only: bool = False) -> None:
        current = self.remote.get(branch)
        if create_only and current is not None:
            raise GitPushRejected(f"push to {branch} rejected (stale info)", "stale info")
        if self.reject_pushes > 0 or (
            current is not None and current not in self._ancestors(commit)
        ):
            self.reject_pushes = max(0, self.reject_pushes - 1)
            raise GitPushRejected(f"push to {branch} rejected (fetch first)", "fetch first")
        self.remote[branch] = commit
        self.pushes.append((branch, commit))

    def fetch(self, remote: str, branch: str) -> str:
        if branch not in self.remote:
            raise UsageError(f"branch {branch} does not exist on {remote}")
        self.tracking[branch] = self.remote[branch]
        return self.tracking[branch]

    def fast_forward(self, commit: str) -> None:
        if self.local not in self._ancestors(commit):
            raise Permanent(f"cannot fast-forward to {commit[:12]}")
        self.local = commit

    def remote_branch_exists(self, remote: str, branch: str) -> bool:
        return branch in self.remote

    def delete_remote_branch(self, remote: str, branch: str, expected: str) -> None:
        if self.remote.get(branch) == expected:
            del self.remote[branch]
