"""The ``git`` archive store: the dir store's layout (``objects/sha256/ab/cdef…``,
``ledger/NNNNNNNN.json``) kept on an orphan branch of the user's repository and pushed to
a remote, so every CI runner and laptop shares one archive.

Used through ``llmops.archive.Archive``; ``llmops.ops.release.archive_for`` opens it for
``archive: {type: git}``.

Why plumbing and no work tree: a write turns the branch tip plus one new file into a
tree in a throw-away index file under ``.git/llmops/`` (``GIT_INDEX_FILE``), commits it
with ``commit-tree`` (parent: the tip; the branch's first commit has none, so it shares no
history with the user's branches), pushes that commit, and only then moves
``refs/heads/<branch>``; fetches land in ``refs/remotes/<remote>/<branch>``. Reads go
through gitpython's object database (one long-lived ``git cat-file --batch``). The
user's work tree, index, HEAD and FETCH_HEAD are never touched, no commit or push hook
runs (``commit-tree`` has none; the push passes ``--no-verify``), and there is no second
checkout that a crash could leave half-updated or that needs cleaning. It works in a
bare repository too (a controller's mirror).

Writers on one machine serialise on flock(2) of ``.git/llmops/archive.lock`` (the common
git directory, so linked worktrees share it), like the dir store's ``.lock``. Writers on
different machines are serialised by the push itself: a fast-forward-only push of a
commit whose parent is the tip we built on succeeds only if nobody moved the remote
branch meanwhile. When it is rejected we fetch, rebuild the change on the new tip — a
ledger entry is re-sealed with the next ``seq`` and the new ``prev``; an object already
there needs nothing — and push again, at most ``max_attempts`` (25) times, sleeping a
full-jitter exponential backoff capped at 1 s in between; ``push_retries`` counts the
rebuilds. Rounds are not fair: the writer that just won needs no fetch, so in a burst it
keeps winning and the others wait for its burst to end (two runners appending 10 entries
each in tight loops: the loser's first append retries ~5 times). CI jobs write a few
entries each, so real waits are short; the bound is generous for that reason.

Freshness: reads fetch the branch at most once per instance (the first read or write),
then read the local copy; long-running callers pass ``max_staleness`` (seconds) or call
``refresh()``. Writes do not need a fresh view: a stale base is caught by the rejected
push. When a read's fetch fails but a local copy exists, the read uses it and logs a
warning (the ledger only grows, so the copy is a true prefix); a write never proceeds
without the remote. When ``remote`` is not configured at all, writes commit to the local
branch only, said once per instance in the log; once the remote is added, the next write
publishes them.

Crashes: the local branch moves only after the push succeeded; a crash before leaves an
unreferenced commit (``git gc`` drops it), a crash after is repaired by the next fetch.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import git

from llmops.adapters.gitplumbing import (
    GitBranchDiverged,
    GitRemoteError,
    Outcome,
    Plumbing,
    reason,
    scrub,
)
from llmops.archive.base import ArchiveCorrupt, ObjectMissing
from llmops.archive.dirstore import default_actor, now_iso
from llmops.domain.archive import (
    GENESIS,
    EventType,
    Finding,
    LedgerEntry,
    VerifyReport,
    seal,
    sha256_hex,
    verify_chain,
)
from llmops.domain.errors import GitPushRejected, SourceError, UsageError

log = logging.getLogger(__name__)

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_ENTRY = re.compile(r"^(\d{8})\.json$")
_REMOTE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]*$")
#: push rejections that mean "someone else moved the branch": fetch and rebuild.
_CONTENTION = ("[rejected]", "failed to update ref", "cannot lock ref", "incorrect old value")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Change:
    """Files to add on top of the tip, and the commit message saying why."""

    files: dict[str, str]
    message: str


def _object_path(digest: str) -> str:
    return f"objects/sha256/{digest[:2]}/{digest[2:]}"


def _entry_bytes(entry: LedgerEntry) -> bytes:
    """The same bytes the dir store writes for an entry."""
    return json.dumps(entry.to_json(), sort_keys=True, indent=1).encode() + b"\n"


def _open_repo(root: Path) -> git.Repo:
    try:
        return git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise UsageError(
            f"archive type git needs a git repository, and {root} is not in one; "
            "run `git init` there, or use archive type dir"
        ) from None


class GitArchive:
    """An archive on an orphan branch of a git repository, shared through a remote."""

    def __init__(
        self,
        repo_root: Path,
        branch: str = "llmops/archive",
        remote: str = "origin",
        *,
        max_staleness: float | None = None,
        max_attempts: int = 25,
        network_timeout: float = 120.0,
    ) -> None:
        if not _REMOTE_NAME.match(remote):
            raise UsageError(f"archive remote {remote!r} is not a remote name such as 'origin'")
        self._repo = _open_repo(repo_root)
        self._git = Plumbing(self._repo, network_timeout)
        if self._git.run("check-ref-format", f"refs/heads/{branch}", check=False).status or (
            branch.startswith("-")
        ):
            raise UsageError(f"archive branch {branch!r} is not a valid git branch name")
        self.branch = branch
        self.remote = remote
        self.max_staleness = max_staleness
        self.max_attempts = max(1, max_attempts)
        #: changes rebuilt on a new tip after a rejected push, over this instance's life
        self.push_retries = 0
        self.local_ref = f"refs/heads/{branch}"
        self.remote_ref = f"refs/remotes/{remote}/{branch}"
        self.shared = remote in {r.name for r in self._repo.remotes}
        self._state = Path(self._repo.common_dir).resolve() / "llmops"
        self._fetched_at: float | None = None
        self._said_local = False
        self._parsed: dict[str, LedgerEntry] = {}
        self._mutex = threading.RLock()

    def __repr__(self) -> str:
        return f"GitArchive({self._git.where!r}, branch={self.branch!r}, remote={self.remote!r})"

    def close(self) -> None:
        """Stop gitpython's helper processes."""
        self._repo.close()

    # objects -----------------------------------------------------------------
    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        path = _object_path(digest)
        blobs: list[str] = []

        def change(base: str | None) -> tuple[_Change | None, str]:
            if self._blob(base, path) is not None:
                return None, digest  # already archived: no commit, no push
            if not blobs:
                blobs.append(self._git.write_blob(data))
            return _Change({path: blobs[0]}, f"llmops: object {digest[:12]}"), digest

        return self._write(change)

    def get(self, digest: str) -> bytes:
        if not _DIGEST.match(digest):
            raise ObjectMissing(f"{digest!r} is not a sha256 digest")
        blob = self._blob(self._read_tip(), _object_path(digest))
        if blob is None:
            raise ObjectMissing(f"object {digest} is not in the archive on branch {self.branch}")
        data = self._read(blob)
        if sha256_hex(data) != digest:
            raise ArchiveCorrupt(f"object {digest} is corrupt; run `llmops archive verify`")
        return data

    def has(self, digest: str) -> bool:
        if not _DIGEST.match(digest):
            return False
        return self._blob(self._read_tip(), _object_path(digest)) is not None

    # ledger ------------------------------------------------------------------
    def append(
        self,
        event: EventType,
        app: str,
        *,
        release: str | None = None,
        env: str | None = None,
        evidence: dict[str, str] | None = None,
        data: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> LedgerEntry:
        who = actor or default_actor()

        def change(base: str | None) -> tuple[_Change | None, LedgerEntry]:
            for name, digest in (evidence or {}).items():
                if not _DIGEST.match(digest) or self._blob(base, _object_path(digest)) is None:
                    raise ObjectMissing(
                        f"evidence {name!r} names object {digest}, which is not archived"
                    )
            blobs = self._ledger_blobs(base)
            last = self._parse(blobs[-1]) if blobs else None
            entry = seal(
                LedgerEntry(
                    seq=(last.seq + 1) if last else 1,
                    prev=last.hash if last else GENESIS,
                    time=now_iso(),
                    actor=who,
                    event=event,
                    app=app,
                    release=release,
                    env=env,
                    evidence=dict(evidence or {}),
                    data=dict(data or {}),
                )
            )
            path = f"ledger/{entry.seq:08d}.json"
            if self._blob(base, path) is not None:
                raise ArchiveCorrupt(
                    f"ledger entry {path} already exists on {self.branch} although the last "
                    "entry says otherwise; run `llmops archive verify`"
                )
            blob = self._git.write_blob(_entry_bytes(entry))
            return _Change({path: blob}, f"llmops: {event} {app} (ledger entry {entry.seq})"), entry

        return self._write(change)

    def entries(self) -> list[LedgerEntry]:
        return [self._parse(blob) for blob in self._ledger_blobs(self._read_tip())]

    def verify(self) -> VerifyReport:
        tip = self._read_tip()
        findings: list[Finding] = []
        entries: list[LedgerEntry] = []
        for blob in self._ledger_blobs(tip):
            try:
                entries.append(self._parse(blob))
            except ArchiveCorrupt as exc:
                findings.append(Finding(f"ledger entry {blob.name}", exc.message))
        present: set[str] = set()
        root = self._tree(tip, "objects/sha256")
        for prefix in root.trees if root is not None else []:
            for blob in prefix.blobs:
                digest = prefix.name + blob.name
                present.add(digest)
                if sha256_hex(self._read(blob)) != digest:
                    findings.append(
                        Finding(f"object {digest}", "content does not match its digest")
                    )
        findings.extend(verify_chain(entries, present.__contains__))
        return VerifyReport(len(entries), len(present), tuple(findings))

    def refresh(self) -> None:
        """Fetch the branch now, whatever ``max_staleness`` says."""
        with self._mutex, self._locked():
            if self.shared:
                self._fetch()
            self._sync()

    # reading the branch -------------------------------------------------------
    def _read_tip(self) -> str | None:
        """The commit reads look at: fetched first if this instance's view is stale."""
        with self._mutex, self._locked():
            if self.shared and self._stale():
                try:
                    self._fetch()
                except GitRemoteError as exc:
                    if not self._git.refs(self.local_ref, self.remote_ref):
                        raise
                    log.warning(
                        "%s; reading the local copy of %s, which may be behind", exc, self.branch
                    )
                    self._fetched_at = time.monotonic()
            elif not self.shared:
                self._say_local()
            return self._sync()

    def _lookup(self, commit: str | None, path: str) -> object:
        """The tree or blob at ``path`` in ``commit`` (the root tree for ""), None if absent."""
        if commit is None:
            return None
        try:
            tree = self._repo.commit(commit).tree
            return tree / path if path else tree
        except KeyError:
            return None
        except (ValueError, git.GitError, OSError) as exc:
            raise self._unreadable(path or "/", exc) from exc

    def _tree(self, commit: str | None, path: str) -> git.Tree | None:
        found = self._lookup(commit, path)
        return found if isinstance(found, git.Tree) else None

    def _blob(self, commit: str | None, path: str) -> git.Blob | None:
        found = self._lookup(commit, path)
        return found if isinstance(found, git.Blob) else None

    def _ledger_blobs(self, commit: str | None) -> list[git.Blob]:
        tree = self._tree(commit, "ledger")
        if tree is None:
            return []
        return sorted((b for b in tree.blobs if _ENTRY.match(b.name)), key=lambda b: b.name)

    def _read(self, blob: git.Blob) -> bytes:
        try:
            data: bytes = blob.data_stream.read()
        except (ValueError, git.GitError, OSError) as exc:
            raise self._unreadable(str(blob.path), exc) from exc
        return data

    def _unreadable(self, path: str, exc: Exception) -> ArchiveCorrupt:
        return ArchiveCorrupt(
            f"cannot read {path} on {self.branch} in {self._git.where} ({type(exc).__name__}: "
            f"{scrub(str(exc)).splitlines()[0] if str(exc) else ''}); run `git fsck`"
        )

    def _parse(self, blob: git.Blob) -> LedgerEntry:
        cached = self._parsed.get(blob.hexsha)
        if cached is not None:
            return cached
        try:
            entry = LedgerEntry.from_json(json.loads(self._read(blob)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ArchiveCorrupt(
                f"ledger entry {blob.name} on {self.branch} cannot be read ({exc}); "
                "run `llmops archive verify`"
            ) from exc
        self._parsed[blob.hexsha] = entry
        return entry

    # writing the branch -------------------------------------------------------
    def _write(self, change: Callable[[str | None], tuple[_Change | None, T]]) -> T:
        """Apply ``change`` on the tip and publish it, rebuilding it after each rejection."""
        rejected: str | None = None
        with self._mutex:
            for attempt in range(1, self.max_attempts + 1):
                with self._locked():
                    if self.shared and (attempt > 1 or self._stale()):
                        self._fetch()
                    self._refuse_checked_out()
                    base = self._sync()
                    todo, result = change(base)
                    if todo is None:
                        return result
                    tree = self._git.write_tree(base, todo.files, self._state)
                    commit = self._git.commit(tree, [base] if base else [], todo.message)
                    if not self.shared:
                        self._say_local()
                        self._git.set_ref(self.local_ref, commit, base, todo.message)
                        return result
                    rejected = self._push(commit)
                    if rejected is None:
                        self._git.set_refs(
                            todo.message,
                            [(self.local_ref, commit, base), (self.remote_ref, commit, None)],
                            unchecked=self.remote_ref,  # git push may have moved it already
                        )
                        return result
                if attempt == self.max_attempts:
                    break
                self.push_retries += 1
                # Full jitter, short cap. Rounds are not fair: the writer that just won needs
                # no fetch, so it wins again until its burst ends; a long sleep only adds to
                # that wait. Bursts are short in practice (a CI job writes a few entries).
                delay = random.uniform(0.0, min(1.0, 0.025 * 2**attempt))
                log.info(
                    "git push %s %s was rejected (%s): another writer moved the branch; "
                    "fetching and re-applying on the new tip in %.2fs (attempt %d of %d)",
                    self.remote,
                    self.branch,
                    rejected,
                    delay,
                    attempt + 1,
                    self.max_attempts,
                )
                time.sleep(delay)
        raise GitPushRejected(
            f"git push {self.remote} {self.branch} was rejected {self.max_attempts} times because "
            f"other writers kept moving the branch ({rejected}); try again",
            reason=rejected or "rejected",
            delay=2.0,
        )

    def _remote_tip(self) -> str | None:
        return self._git.refs(self.remote_ref).get(self.remote_ref)

    def _push(self, commit: str) -> str | None:
        """None when pushed; git's reason when rejected because the remote branch moved."""
        outcome = self._git.run(
            "push",
            "--porcelain",
            "--no-verify",
            "--no-signed",
            self.remote,
            f"{commit}:{self.local_ref}",
            check=False,
            network=True,
        )
        if outcome.status == 0:
            return None
        refused = [line for line in outcome.stdout.splitlines() if line.startswith("!")]
        why = refused[0].rsplit("\t", 1)[-1] if refused else ""
        if refused and any(word in why for word in _CONTENTION):
            return why
        if refused:
            raise GitRemoteError(
                f"git push {self.remote} {self.branch} was refused by the remote: {why}; "
                f"check that the remote lets you push to {self.branch} (branch protection, hooks)"
            ) from outcome.error()
        raise self._remote_failure("push", outcome) from outcome.error()

    def _fetch(self) -> None:
        outcome = self._git.run(
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--no-recurse-submodules",
            self.remote,
            f"+{self.local_ref}:{self.remote_ref}",
            check=False,
            network=True,
        )
        if outcome.status != 0:
            if "couldn't find remote ref" not in outcome.stderr:
                raise self._remote_failure("fetch", outcome) from outcome.error()
            # Not on the remote (yet, or deleted): the next push creates it from our copy.
            if self._remote_tip() is not None:
                self._git.delete_ref(self.remote_ref)
        self._fetched_at = time.monotonic()

    def _remote_failure(self, verb: str, outcome: Outcome) -> GitRemoteError:
        return GitRemoteError(
            f"git {verb} {self.remote} {self.branch} failed: {reason(outcome.stderr)}; "
            "check the remote URL and credentials"
        )

    def _sync(self) -> str | None:
        """Fast-forward the local branch to the remote-tracking one; return the newer tip."""
        refs = self._git.refs(self.local_ref, self.remote_ref)
        local = refs.get(self.local_ref)
        remote = refs.get(self.remote_ref) if self.shared else None
        if remote is None or remote == local:
            return local
        if local is None or self._git.is_ancestor(local, remote):
            self._git.set_ref(
                self.local_ref, remote, local, f"llmops: fast-forward to {self.remote}"
            )
            return remote
        if self._git.is_ancestor(remote, local):
            return local  # commits made before the remote existed; the next push publishes them
        raise GitBranchDiverged(
            f"{self.branch} and {self.remote}/{self.branch} have diverged (the remote branch was "
            f"rewritten, or local commits were never pushed); compare them with `git log "
            f"{self.branch}...{self.remote}/{self.branch}`, and if the remote is right run "
            f"`git branch -f {self.branch} {self.remote}/{self.branch}`"
        )

    def _refuse_checked_out(self) -> None:
        with contextlib.suppress(TypeError, ValueError):
            if not self._repo.bare and self._repo.head.reference.path == self.local_ref:
                raise UsageError(
                    f"the archive branch {self.branch} is checked out in {self._git.where}; "
                    "switch to another branch before archiving (llmops never writes a work tree)"
                )

    def _stale(self) -> bool:
        if self._fetched_at is None:
            return True
        return (
            self.max_staleness is not None
            and time.monotonic() - self._fetched_at > self.max_staleness
        )

    def _say_local(self) -> None:
        if not self._said_local:
            self._said_local = True
            log.warning(
                "git archive: no remote %r in %s; %s is kept locally without pushing "
                "(add the remote to share the archive)",
                self.remote,
                self._git.where,
                self.branch,
            )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """flock(2) on ``.git/llmops/archive.lock``; closing the descriptor releases it."""
        lock = self._state / "archive.lock"
        try:
            self._state.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SourceError(
                f"cannot lock the git archive at {lock}: {exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
