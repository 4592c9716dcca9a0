"""The archive: content-addressed objects and the hash-chained ledger, behind one interface.

``open_archive`` picks the store a pipeline names (``dir`` now; ``git`` pushes an orphan
branch). Called by ``llmops.api`` use cases: release, evaluate, promote, rollback, history.
"""

from __future__ import annotations

from pathlib import Path

from llmops.archive.base import Archive, ArchiveCorrupt, ObjectMissing
from llmops.archive.dirstore import DirArchive

__all__ = ["Archive", "ArchiveCorrupt", "DirArchive", "ObjectMissing", "open_dir_archive"]


def open_dir_archive(path: Path) -> DirArchive:
    return DirArchive(path)
