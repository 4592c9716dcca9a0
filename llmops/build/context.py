"""The build context: a tar made in Python with fixed metadata, so identical inputs give
identical bytes (and the builder's cache hits).

Called by ``llmops.ops.build``. Every entry has mtime 0, uid/gid 0, no user or group
names, mode 0644 (0755 for directories), and the entries are sorted by name.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from llmops.domain.errors import SourceError

_FILE_MODE = 0o644
_DIR_MODE = 0o755


@dataclass(frozen=True, slots=True)
class BuildContext:
    """The tar the engine builds from, and a digest of it."""

    data: bytes
    files: tuple[str, ...]

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def fileobj(self) -> io.BytesIO:
        return io.BytesIO(self.data)


def _info(name: str, size: int = 0, *, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = _DIR_MODE
    else:
        info.mode = _FILE_MODE
        info.size = size
    return info


def make_context(
    files: Mapping[str, bytes | Path],
) -> BuildContext:
    """A tar of ``files`` (context path → bytes, or a host file to copy).

    Directories are added for every parent, so ``COPY wheels/ /wheels/`` works.
    ``SourceError`` names a host file that cannot be read.
    """
    directories: set[str] = set()
    for name in files:
        if name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"context path {name!r} must be relative and stay inside")
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            directories.add("/".join(parts[:i]))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(directories | set(files)):
            if name in directories:
                tar.addfile(_info(name, directory=True))
                continue
            content = files[name]
            if isinstance(content, Path):
                try:
                    data = content.read_bytes()
                except OSError as exc:
                    raise SourceError(f"cannot read {content}: {exc.strerror or exc}") from None
            else:
                data = content
            tar.addfile(_info(name, len(data)), io.BytesIO(data))
    return BuildContext(buffer.getvalue(), tuple(sorted(files)))
