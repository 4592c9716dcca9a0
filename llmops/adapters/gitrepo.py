"""Git access through gitpython: the commit a work tree is at, and whether it is dirty.

Called by ``llmops.ops`` use cases to record provenance. Later: promotion commits and
pushes, the git archive store. Library errors become ``llmops.domain.errors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Revision:
    """Where a work tree stands: its HEAD commit and whether files differ from it."""

    commit: str
    dirty: bool
    branch: str | None


def revision(path: Path) -> Revision | None:
    """The revision of the git work tree containing ``path``; None outside git."""
    try:
        import git
    except ImportError:  # pragma: no cover - gitpython is a dependency
        return None
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    try:
        commit = repo.head.commit.hexsha
    except ValueError:  # no commits yet
        return None
    try:
        branch: str | None = repo.active_branch.name
    except TypeError:  # detached HEAD
        branch = None
    try:
        dirty = repo.is_dirty(untracked_files=False, path=str(path))
    except git.GitCommandError:
        dirty = False
    return Revision(commit, dirty, branch)
