"""Diagnostics: one problem found in the user's files, with where and what to do.

Produced by ``llmops.manifests`` and rendered by ``llmops.cli.output``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    """A problem at ``file:line:column``; ``path`` is the dotted field path inside it."""

    file: str
    line: int
    column: int
    path: str
    message: str
    severity: Severity = "error"

    @property
    def location(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"

    def render(self) -> str:
        where = f"{self.location} {self.path}" if self.path else self.location
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}: {prefix}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
            "severity": self.severity,
        }
