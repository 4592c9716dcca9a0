"""Promotion git for a repository without a remote: commits stay local.

Called by ``llmops.ops.reconcile`` (and so ``llmops up``) when the repository has no
remote to push to, or when ``llmops up`` keeps everything on this machine. It is the
real work tree (``GitWorkTree``) with the remote operations mapped onto local refs:
a push to the checked-out branch is left to the fast-forward that follows it, a
create-only push to another branch creates that local branch (a proposal waiting for
approval), ``fetch`` reads the local branch, and nothing is ever "ahead".
"""

from __future__ import annotations

from pathlib import Path

from llmops.adapters.gitops import GitWorkTree
from llmops.domain.errors import GitPushRejected, UsageError


def has_remote(path: Path, remote: str) -> bool:
    """Whether the work tree at ``path`` has ``remote`` configured."""
    try:
        GitWorkTree(path).remote_url(remote)
    except UsageError:
        return False
    return True


class LocalGit(GitWorkTree):
    """A ``GitOps`` whose "remote" is the repository itself."""

    def __repr__(self) -> str:
        return f"LocalGit({str(self.toplevel())!r})"

    def remote_url(self, remote: str) -> str:
        return str(self.toplevel())

    def _branch_commit(self, branch: str) -> str | None:
        run = self._run("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}")
        return run.out if run.status == 0 and run.out else None

    def fetch(self, remote: str, branch: str) -> str:
        found = self._branch_commit(branch)
        if found is None:
            raise UsageError(f"branch {branch} does not exist in {self.toplevel()}")
        return found

    def commits_ahead(self, upstream: str) -> int:
        return 0

    def push(self, remote: str, commit: str, branch: str, *, create_only: bool = False) -> None:
        if branch == self.current_branch():
            return  # the fast-forward that follows moves the branch and the work tree
        if create_only and self._branch_commit(branch) is not None:
            raise GitPushRejected(f"branch {branch} already exists locally", "exists")
        self._ok("update-ref", f"refs/heads/{branch}", commit)

    def remote_branch_exists(self, remote: str, branch: str) -> bool:
        return self._branch_commit(branch) is not None

    def delete_remote_branch(self, remote: str, branch: str, expected: str) -> None:
        if self._branch_commit(branch) == expected:
            self._ok("update-ref", "-d", f"refs/heads/{branch}", expected)

    def identity(self) -> tuple[str | None, str | None]:
        """``user.name`` and ``user.email`` as git sees them (None when unset)."""
        name = self._run("config", "--get", "user.name")
        email = self._run("config", "--get", "user.email")
        return (name.out or None if name.status == 0 else None), (
            email.out or None if email.status == 0 else None
        )

    def merge_proposal(self, branch: str) -> str:
        """Approve a local proposal: fast-forward the checked-out branch to it, delete it."""
        commit = self.fetch("", branch)
        self.fast_forward(commit)
        self.delete_remote_branch("", branch, commit)
        return commit
