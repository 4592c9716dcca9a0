"""Release use cases: create (archive) a release, list, show, diff, verify, history.

Called by ``llmops.api``; the CLI renders what these return.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmops.archive import DirArchive
from llmops.archive.base import Archive, ObjectMissing
from llmops.domain.archive import LedgerEntry, VerifyReport
from llmops.domain.errors import UsageError
from llmops.domain.ids import RELEASE_ID_RE
from llmops.domain.repo import Repo
from llmops.releases.bundle import Bundle, build_bundle, load_bundle
from llmops.releases.diff import BundleDiff, diff_bundles

DEFAULT_ARCHIVE = ".llmops/archive"


def archive_for(repo: Repo, override: Path | None = None) -> Archive:
    """The archive a repository's pipeline names (or ``override``, a directory)."""
    if override is not None:
        return DirArchive(override)
    configs = [p.pipeline.spec.archive for p in repo.pipelines.values()]
    if not configs:
        return DirArchive(Path(repo.root) / DEFAULT_ARCHIVE)
    config = configs[0]
    if any(c != config for c in configs[1:]):
        raise UsageError("pipelines name different archives; pass --archive PATH to choose one")
    if config.type == "git":
        from llmops.adapters.gitarchive import GitArchive

        # the git repository containing repo.root; the branch lives there, not in the tree
        return GitArchive(Path(repo.root), branch=config.branch, remote=config.remote)
    return DirArchive(Path(repo.root) / config.path)


@dataclass(frozen=True, slots=True)
class ReleaseCreated:
    """What ``release create`` did: the release, and whether it was new."""

    release_id: str
    created: bool
    bytes: int
    files: tuple[str, ...]
    entry: LedgerEntry | None
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class ReleaseInfo:
    """One archived release, for listings."""

    release_id: str
    app: str
    time: str
    actor: str
    commit: str | None
    pinned_in: tuple[str, ...]
    marked_bad: bool


def work_bundle(repo: Repo, app: str) -> Bundle:
    """The bundle of ``app`` as it is in the work tree."""
    source = repo.apps.get(app)
    if source is None:
        known = ", ".join(sorted(repo.apps)) or "none"
        raise UsageError(f"no app named {app!r} (apps: {known})")
    return build_bundle(source, Path(repo.root))


def create_release(repo: Repo, app: str, archive: Archive, dry_run: bool = False) -> ReleaseCreated:
    """Archive the work tree's release of ``app``; idempotent for unchanged content."""
    from llmops.adapters.gitrepo import revision

    bundle = work_bundle(repo, app)
    known = any(
        e.event == "released" and e.release == bundle.release_id for e in archive.entries()
    )
    files = tuple(sorted(bundle.files))
    if dry_run or known:
        return ReleaseCreated(bundle.release_id, False, len(bundle.data), files, None, dry_run)
    digest = archive.put(bundle.data)
    rev = revision(Path(repo.root))
    data: dict[str, object] = {"files": len(files), "bytes": len(bundle.data)}
    if rev is not None:
        data.update({"commit": rev.commit, "dirty": rev.dirty, "branch": rev.branch})
    entry = archive.append(
        "released", app, release=bundle.release_id, evidence={"bundle": digest}, data=data
    )
    return ReleaseCreated(bundle.release_id, True, len(bundle.data), files, entry)


def list_releases(repo: Repo, archive: Archive, app: str | None = None) -> list[ReleaseInfo]:
    entries = archive.entries()
    bad = {e.release for e in entries if e.event == "marked-bad"}
    pinned: dict[str, list[str]] = {}
    for env, source in repo.environments.items():
        for release in source.environment.spec.releases.values():
            pinned.setdefault(release, []).append(env)
    found = []
    for entry in entries:
        if entry.event != "released" or entry.release is None or (app and entry.app != app):
            continue
        commit = entry.data.get("commit")
        if commit and entry.data.get("dirty"):
            commit = f"{str(commit)[:12]}+dirty"
        found.append(
            ReleaseInfo(
                entry.release,
                entry.app,
                entry.time,
                entry.actor,
                str(commit) if commit else None,
                tuple(sorted(pinned.get(entry.release, []))),
                entry.release in bad,
            )
        )
    return found


def resolve(repo: Repo, archive: Archive, ref: str) -> Bundle:
    """A bundle by full id, unique digest prefix (``app@sha256:4f1c`` or ``4f1c``), or ``APP@work``."""
    if ref.endswith("@work"):
        return work_bundle(repo, ref.removesuffix("@work"))
    if RELEASE_ID_RE.match(ref):
        digest = ref.split(":", 1)[1]
        try:
            return load_bundle(archive.get(digest))
        except ObjectMissing:
            raise UsageError(f"release {ref} is not in the archive; `llmops release list` shows what is") from None
    app, _, rest = ref.rpartition("@")
    prefix = rest.removeprefix("sha256:")
    if len(prefix) < 4:
        raise UsageError(f"{ref!r}: give at least 4 hex digits of the digest, or APP@work")
    matches = sorted(
        {
            e.release
            for e in archive.entries()
            if e.event == "released"
            and e.release
            and e.release.split(":", 1)[1].startswith(prefix)
            and (not app or e.app == app)
        }
    )
    if not matches:
        raise UsageError(f"no archived release matches {ref!r}; `llmops release list` shows them")
    if len(matches) > 1:
        raise UsageError(f"{ref!r} is ambiguous: {', '.join(matches)}")
    return load_bundle(archive.get(matches[0].split(":", 1)[1]))


def diff(repo: Repo, archive: Archive, old: str, new: str) -> BundleDiff:
    return diff_bundles(resolve(repo, archive, old), resolve(repo, archive, new))


def history(archive: Archive, app: str | None = None, env: str | None = None) -> list[LedgerEntry]:
    return [
        e
        for e in archive.entries()
        if (app is None or e.app == app) and (env is None or e.env == env)
    ]


def verify(archive: Archive) -> VerifyReport:
    return archive.verify()
