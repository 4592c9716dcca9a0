"""Git plumbing without a work tree: run git, read and move refs (compare-and-swap), write
blobs, build a tree in a private index, commit, and report failures as llmops errors with
credentials scrubbed from every message.

Called by ``llmops.adapters.gitarchive``. Nothing here reads or writes a work tree, the
user's index, HEAD or FETCH_HEAD.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import git

from llmops.domain.errors import ExternalError, Permanent

#: ``scheme://anything@`` up to the last ``@`` of the token: ``user:token@`` and the like.
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s'\"]*@")
_FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "llmops",
    "GIT_AUTHOR_EMAIL": "llmops@localhost",
    "GIT_COMMITTER_NAME": "llmops",
    "GIT_COMMITTER_EMAIL": "llmops@localhost",
}


class GitRemoteError(Permanent):
    """The remote cannot be reached, refuses our credentials, or refuses the push."""


class GitBranchDiverged(Permanent):
    """The local and remote archive branches have histories neither contains."""


def scrub(text: str) -> str:
    """``text`` with ``user:password@`` removed from every URL in it."""
    return _URL_CREDENTIALS.sub(r"\1", text)


def reason(stderr: str) -> str:
    """The line of git's stderr that says what went wrong, scrubbed, without its prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        for prefix in ("fatal:", "error:"):
            if line.startswith(prefix):
                return scrub(line.removeprefix(prefix).strip())
    return scrub(lines[0]) if lines else "no output from git"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one git command did."""

    args: tuple[str, ...]
    status: int
    stdout: str
    stderr: str

    def error(self) -> git.GitCommandError:
        """A scrubbed ``GitCommandError`` to chain as ``__cause__``."""
        return git.GitCommandError(
            ["git", *(scrub(a) for a in self.args)],
            self.status,
            scrub(self.stderr),
            scrub(self.stdout),
        )


class Plumbing:
    """Git commands against one repository, never prompting for credentials."""

    def __init__(self, repo: git.Repo, network_timeout: float) -> None:
        self.repo = repo
        self.network_timeout = network_timeout
        self.where = str(repo.working_tree_dir or repo.git_dir)
        # A hidden credential prompt would hang a CI job; fail instead.
        repo.git.update_environment(GIT_TERMINAL_PROMPT="0")
        self._identity: dict[str, str] | None = None

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        check: bool = True,
        network: bool = False,
    ) -> Outcome:
        """Run ``git *args``; raise ``ExternalError`` on a non-zero exit when ``check``."""
        command = ["git", *args]
        started = time.monotonic()
        try:
            with contextlib.ExitStack() as stack:
                handle = None
                if stdin is not None:
                    handle = stack.enter_context(tempfile.TemporaryFile())
                    handle.write(stdin)
                    handle.seek(0)
                status, stdout, stderr = self.repo.git.execute(
                    command,
                    istream=handle,
                    with_extended_output=True,
                    with_exceptions=False,
                    env=env,
                    kill_after_timeout=self.network_timeout if network else None,
                )
        except (git.GitError, OSError) as exc:
            raise ExternalError(
                f"cannot run git {args[0]}: {scrub(str(exc))}; is git installed?"
            ) from None
        if network and status != 0 and time.monotonic() - started >= self.network_timeout:
            # gitpython killed it (and its helpers, which may have answered for it)
            stderr = f"fatal: no answer within {self.network_timeout:g} s"
        outcome = Outcome(tuple(args), status, stdout, stderr)
        if check and status != 0:
            raise ExternalError(
                f"git {args[0]} failed in {self.where}: {reason(stderr)}"
            ) from outcome.error()
        return outcome

    # refs --------------------------------------------------------------------
    def refs(self, *names: str) -> dict[str, str]:
        """The commit each of ``names`` points at; missing refs are absent from the result."""
        out = self.run("for-each-ref", "--format=%(refname) %(objectname)", *names).stdout
        found = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
        return {name: found[name] for name in names if name in found}

    def set_ref(self, name: str, new: str, old: str | None, message: str) -> None:
        """Point ``name`` at ``new`` if it is still at ``old`` (``None``: must not exist)."""
        self.run("update-ref", "-m", message, name, new, old or "")

    def set_refs(
        self, message: str, moves: Sequence[tuple[str, str, str | None]], *, unchecked: str = ""
    ) -> None:
        """Move every ``(name, new, old)`` in one transaction, each only if still at ``old``
        (``None``: must not exist) — except the ref named ``unchecked``, moved wherever it is.
        """
        lines = []
        for name, new, old in moves:
            if name == unchecked:
                lines.append(f"update {name} {new}")
            elif old is None:
                lines.append(f"create {name} {new}")
            else:
                lines.append(f"update {name} {new} {old}")
        self.run("update-ref", "-m", message, "--stdin", stdin="\n".join([*lines, ""]).encode())

    def delete_ref(self, name: str) -> None:
        self.run("update-ref", "-d", name)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        outcome = self.run("merge-base", "--is-ancestor", ancestor, descendant, check=False)
        if outcome.status not in (0, 1):
            raise ExternalError(
                f"git merge-base failed in {self.where}: {reason(outcome.stderr)}"
            ) from outcome.error()
        return outcome.status == 0

    # objects -----------------------------------------------------------------
    def write_blob(self, data: bytes) -> str:
        """Store ``data`` byte for byte (no filters) and return the blob id."""
        return self.run("hash-object", "-w", "--no-filters", "--stdin", stdin=data).stdout.strip()

    def write_tree(self, base: str | None, files: Mapping[str, str], scratch: Path) -> str:
        """The tree of ``base`` (a commit, or empty) with ``files`` (path → blob) added.

        Built in a throw-away index file under ``scratch``, never the user's index.
        """
        scratch.mkdir(parents=True, exist_ok=True)
        index = scratch / f"index-{os.getpid()}-{os.urandom(4).hex()}"
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            self.run("read-tree", base or "--empty", env=env)
            args: list[str] = ["update-index", "--add"]
            for path, blob in files.items():
                args += ["--cacheinfo", f"100644,{blob},{path}"]
            self.run(*args, env=env)
            return self.run("write-tree", env=env).stdout.strip()
        finally:
            for leftover in (index, index.with_name(index.name + ".lock")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()

    def commit(self, tree: str, parents: Sequence[str], message: str) -> str:
        """A commit of ``tree``; the configured identity, else ``llmops <llmops@localhost>``."""
        args = ["commit-tree", "--no-gpg-sign", tree, "-m", message]
        for parent in parents:
            args += ["-p", parent]
        return self.run(*args, env=self._identity_env()).stdout.strip()

    def _identity_env(self) -> dict[str, str]:
        if self._identity is None:
            known = all(
                self.run("var", var, check=False).status == 0
                for var in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT")
            )
            self._identity = {} if known else dict(_FALLBACK_IDENTITY)
        return self._identity
