"""Clone the repository ``llmops controller --repo URL`` reconciles; called once at start
by ``llmops.cli.controller`` (later passes fetch and fast-forward the clone themselves).

Credentials in a URL are never printed: messages show the URL with its user part masked.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from llmops.domain.errors import ExternalError, UsageError

_CREDENTIALS = re.compile(r"(?<=://)[^/@]+@")


def masked(url: str) -> str:
    """``url`` with any ``user:password@`` part replaced by ``***@``."""
    return _CREDENTIALS.sub("***@", url)


def is_url(repo: str) -> bool:
    """True for clone URLs (``https://``, ``ssh://``, ``git@host:path``, ``file://``)."""
    return "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo) is not None


def default_workdir(url: str, cache: Path) -> Path:
    """A clone directory per URL under ``cache``."""
    return cache / hashlib.sha256(url.encode()).hexdigest()[:16]


def ensure_clone(url: str, dest: Path, branch: str | None = None) -> Path:
    """``dest`` as a clone of ``url`` (cloned now when empty or missing); its work tree."""
    import git

    if dest.exists() and any(dest.iterdir()):
        try:
            repo = git.Repo(dest)
            origin = repo.remotes.origin.url
        except (git.InvalidGitRepositoryError, git.NoSuchPathError, AttributeError, ValueError) as exc:
            raise UsageError(
                f"{dest} is not empty and not a clone of {masked(url)}: empty it or choose "
                "another --workdir"
            ) from exc
        if origin != url:
            raise UsageError(
                f"{dest} is a clone of {masked(origin)}, not {masked(url)}: choose another --workdir"
            )
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if branch:
            git.Repo.clone_from(url, dest, branch=branch, env={"GIT_TERMINAL_PROMPT": "0"})
        else:
            git.Repo.clone_from(url, dest, env={"GIT_TERMINAL_PROMPT": "0"})
    except git.GitCommandError as exc:
        detail = masked(str(exc.stderr or exc).strip().splitlines()[-1] if (exc.stderr or str(exc)).strip() else "")
        raise ExternalError(
            f"cannot clone {masked(url)} into {dest}: {detail}; check the URL, the network "
            "and the credentials"
        ) from exc
    return dest
