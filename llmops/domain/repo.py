"""The loaded repository: validated manifests and where each came from. Frozen, no I/O.

Built by ``llmops.manifests.loader``; read by every use case in ``llmops.api``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmops.domain.diagnostics import Diagnostic
from llmops.domain.models import Environment, EvalSuite, LLMApp, Pipeline


@dataclass(frozen=True, slots=True)
class SuiteSource:
    """An EvalSuite and its file (repo-relative, POSIX)."""

    suite: EvalSuite
    file: str

    @property
    def name(self) -> str:
        return self.suite.metadata.name


@dataclass(frozen=True, slots=True)
class AppSource:
    """An LLMApp, its directory and file (repo-relative), and its eval suites."""

    app: LLMApp
    dir: str
    file: str
    suites: tuple[SuiteSource, ...] = ()

    @property
    def name(self) -> str:
        return self.app.metadata.name


@dataclass(frozen=True, slots=True)
class EnvironmentSource:
    """An Environment and its file (repo-relative)."""

    environment: Environment
    file: str


@dataclass(frozen=True, slots=True)
class PipelineSource:
    """A Pipeline and its file (repo-relative)."""

    pipeline: Pipeline
    file: str


@dataclass(frozen=True, slots=True)
class Repo:
    """Every manifest of one repository, validated and cross-checked."""

    root: str
    apps: dict[str, AppSource] = field(default_factory=dict)
    environments: dict[str, EnvironmentSource] = field(default_factory=dict)
    pipelines: dict[str, PipelineSource] = field(default_factory=dict)

    @property
    def case_count(self) -> int:
        return sum(len(s.suite.spec.cases) for a in self.apps.values() for s in a.suites)


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The outcome of validating a repository: the repo when loadable, and every diagnostic."""

    root: str
    diagnostics: tuple[Diagnostic, ...]
    repo: Repo | None
    files: int

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors
