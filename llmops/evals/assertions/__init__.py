"""Assertions: one pure handler per base type, and the grading entry points.

Called by ``llmops.evals.runner`` (``grade_all``) and tests. Importing this package
registers every handler; ``HANDLER_TYPES`` lists the types that have one.
"""

from __future__ import annotations

from llmops.evals.assertions import metrics, model_graded, safety, structured, text
from llmops.evals.assertions.context import EmbedHook, GradeContext, JudgeHook
from llmops.evals.assertions.registry import (
    ASYNC_HANDLERS,
    SYNC_HANDLERS,
    agrade,
    apply_not,
    grade,
    grade_all,
    grade_all_sync,
)

HANDLER_TYPES: frozenset[str] = frozenset(SYNC_HANDLERS) | frozenset(ASYNC_HANDLERS)

__all__ = [
    "ASYNC_HANDLERS",
    "HANDLER_TYPES",
    "SYNC_HANDLERS",
    "EmbedHook",
    "GradeContext",
    "JudgeHook",
    "agrade",
    "apply_not",
    "grade",
    "grade_all",
    "grade_all_sync",
    "metrics",
    "model_graded",
    "safety",
    "structured",
    "text",
]
