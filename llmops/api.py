"""The llmops library API: one function per use case, shared by the CLI and the controller.

Called by ``llmops.cli`` (and later the controller). Functions return frozen results or
raise ``llmops.domain.errors`` exceptions; they never print and never exit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmops.domain.repo import Repo, ValidationReport


def validate(
    path: str | Path = ".", prefix: str | None = None, *, parallel: bool = False
) -> ValidationReport:
    """Validate every manifest under ``path``; diagnostics are returned, not raised.

    ``parallel`` checks a large repository's apps in forked worker processes (the CLI
    asks for it; a long-running process with threads should not).
    """
    from llmops.manifests.repository import display_prefix, validate_repo

    root = Path(path)
    prefix = display_prefix(root) if prefix is None else prefix
    return validate_repo(root, prefix, parallel=parallel)


def load(path: str | Path = ".") -> Repo:
    """The validated repository, or ``ManifestInvalid`` carrying every diagnostic."""
    from llmops.manifests.repository import load_repo

    return load_repo(Path(path))


def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one manifest kind."""
    from llmops.manifests.schemas import json_schema

    return json_schema(kind)


def init(directory: str | Path, app: str = "my-app", force: bool = False) -> list[str]:
    """Scaffold a new llmops repository; returns the files written (repo-relative)."""
    from llmops.scaffold import scaffold

    return scaffold(Path(directory), app, force=force)


# releases and the archive -------------------------------------------------------


def _repo_and_archive(path: str | Path, archive: str | Path | None) -> tuple[Repo, Any]:
    from llmops.ops.release import archive_for

    repo = load(path)
    return repo, archive_for(repo, Path(archive) if archive else None)


def release_create(
    path: str | Path, app: str, *, dry_run: bool = False, archive: str | Path | None = None
) -> Any:
    """Archive the work tree's release of ``app`` (``ReleaseCreated``)."""
    from llmops.ops.release import create_release

    repo, store = _repo_and_archive(path, archive)
    return create_release(repo, app, store, dry_run=dry_run)


def release_list(path: str | Path, app: str | None = None, archive: str | Path | None = None) -> Any:
    """Archived releases, oldest first (``list[ReleaseInfo]``)."""
    from llmops.ops.release import list_releases

    repo, store = _repo_and_archive(path, archive)
    return list_releases(repo, store, app)


def release_show(path: str | Path, ref: str, archive: str | Path | None = None) -> Any:
    """The bundle of a release and its ledger entries (``(Bundle, list[LedgerEntry])``)."""
    from llmops.ops.release import history, resolve

    repo, store = _repo_and_archive(path, archive)
    bundle = resolve(repo, store, ref)
    return bundle, [e for e in history(store, bundle.app) if e.release == bundle.release_id]


def release_diff(path: str | Path, old: str, new: str, archive: str | Path | None = None) -> Any:
    """What changed between two releases (``BundleDiff``)."""
    from llmops.ops.release import diff

    repo, store = _repo_and_archive(path, archive)
    return diff(repo, store, old, new)


def archive_verify(path: str | Path, archive: str | Path | None = None) -> Any:
    """Check the ledger chain and every object (``VerifyReport``)."""
    _, store = _repo_and_archive(path, archive)
    return store.verify()


def history(
    path: str | Path, app: str | None = None, env: str | None = None, archive: str | Path | None = None
) -> Any:
    """Ledger entries for an app and/or environment, oldest first."""
    from llmops.ops.release import history as ledger_history

    _, store = _repo_and_archive(path, archive)
    return ledger_history(store, app, env)


# promotion, rollback, holds and evidence -----------------------------------------


def promote(
    path: str | Path,
    app: str,
    to_env: str,
    *,
    from_env: str | None = None,
    mode: str | None = None,
    pipeline: str | None = None,
    no_run: bool = False,
    dry_run: bool = False,
    archive: str | Path | None = None,
    remote: str = "origin",
) -> Any:
    """Promote ``app`` into ``to_env`` through git (``PromotionResult``; ``Refused`` when a
    check forbids it, with the plan as ``detail``)."""
    from llmops.ops.promote import promote as run

    return run(
        Path(path), app, to_env, from_env=from_env, mode=mode, pipeline=pipeline,
        no_run=no_run, dry_run=dry_run, archive=Path(archive) if archive else None, remote=remote,
    )


def rollback(
    path: str | Path,
    app: str,
    env: str,
    *,
    to: str | None = None,
    force: bool = False,
    mode: str | None = None,
    pipeline: str | None = None,
    reason: str | None = None,
    dry_run: bool = False,
    archive: str | Path | None = None,
    remote: str = "origin",
) -> Any:
    """Pin ``env`` back to the last good release of ``app`` (or ``to``) through git and hold
    automatic promotion there (``PromotionResult``)."""
    from llmops.ops.promote import rollback as run

    return run(
        Path(path), app, env, to=to, force=force, mode=mode, pipeline=pipeline, reason=reason,
        dry_run=dry_run, archive=Path(archive) if archive else None, remote=remote,
    )


def hold(
    path: str | Path, app: str, env: str, reason: str, *, dry_run: bool = False,
    archive: str | Path | None = None,
) -> Any:
    """Hold automatic promotion of ``app`` into ``env`` (``HoldResult``)."""
    from llmops.ops.promote import hold as run

    store = Path(archive) if archive else None
    return run(Path(path), app, env, reason, dry_run=dry_run, archive=store)


def unhold(
    path: str | Path, app: str, env: str, reason: str | None = None, *, dry_run: bool = False,
    archive: str | Path | None = None,
) -> Any:
    """Lift the hold on ``app`` in ``env`` (``HoldResult``)."""
    from llmops.ops.promote import unhold as run

    store = Path(archive) if archive else None
    return run(Path(path), app, env, reason, dry_run=dry_run, archive=store)


def unevidenced_pins(
    path: str | Path, app: str | None = None, archive: str | Path | None = None
) -> Any:
    """Pins lacking the gate evidence their stage demands (``list[Diagnostic]``)."""
    from llmops.ops.promote import check_pins

    return check_pins(Path(path), Path(archive) if archive else None, app)
