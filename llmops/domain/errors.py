"""The llmops error tree; raised everywhere, mapped to exit codes by ``llmops.cli``.

    LlmopsError                      base; ``exit_code`` says how the CLI ends
    ├── UsageError                   wrong arguments or options            (exit 2)
    ├── SourceError                  a path cannot be read: missing, a
    │                                directory, permission denied          (exit 2)
    ├── InvalidInput                 the user's files are wrong; carries
    │   │                            every diagnostic of the run           (exit 1)
    │   └── ManifestInvalid          manifests failed validation
    ├── Refused                      understood, but a policy forbids it: a
    │   │                            gate, a hold, approval, soak; carries
    │   │                            the plan that says why                (exit 1)
    │   └── PromotionInFlight        a promotion of this app into this env
    │                                is already proposed (branch or PR)
    └── ExternalError                something outside failed (git, docker,
        │                            registry, cluster, model provider)    (exit 2)
        ├── Retryable                try again after ``delay`` seconds
        │   └── GitPushRejected      the remote moved (someone pushed
        │                            first): fetch, rebase, re-check, retry
        └── Permanent                retrying will not help
            └── PullRequestExists    GitHub already has an open PR for
                                     this head branch (422)

Every error carries a message a person can act on. Adapters raise the
``ExternalError`` family ``from`` the library exception they caught, so the
original stays in ``__cause__`` for debugging but never reaches the user as a
traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmops.domain.diagnostics import Diagnostic


class LlmopsError(Exception):
    """Base of every error llmops raises on purpose."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(LlmopsError):
    """The command line asked for something that cannot be done as asked."""

    exit_code = 2


class SourceError(LlmopsError):
    """A path named by the user (or required by the layout) cannot be read."""

    exit_code = 2


class InvalidInput(LlmopsError):
    """The user's input is wrong; ``diagnostics`` lists every problem found."""

    exit_code = 1

    def __init__(self, message: str, diagnostics: Sequence[Diagnostic] = ()) -> None:
        super().__init__(message)
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)


class ManifestInvalid(InvalidInput):
    """One or more manifests failed validation."""


class ExternalError(LlmopsError):
    """A component outside llmops failed: git, docker, a registry, a cluster, a model."""

    exit_code = 2


class Retryable(ExternalError):
    """A transient failure; the same call may succeed after ``delay`` seconds."""

    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class Permanent(ExternalError):
    """A failure that retrying will not fix; the message says what to change."""


class Refused(LlmopsError):
    """The request is understood, but a policy forbids it; ``detail`` is the plan saying why."""

    exit_code = 1

    def __init__(self, message: str, detail: object = None) -> None:
        super().__init__(message)
        self.detail = detail


class PromotionInFlight(Refused):
    """A promotion (or rollback) of this app into this environment is already proposed."""


class GitPushRejected(Retryable):
    """The remote refused a push because its branch moved; ``reason`` is git's word for it.

    ``fetch first`` / ``non-fast-forward``: someone pushed first. ``stale info``: a
    ``--force-with-lease`` expectation failed (for a create-only push: the ref exists).
    """

    def __init__(self, message: str, reason: str, delay: float = 0.0) -> None:
        super().__init__(message, delay)
        self.reason = reason


class PullRequestExists(Permanent):
    """GitHub answered 422: an open pull request for this head branch already exists."""


class Interrupted(LlmopsError):
    """Work stopped between two steps because it was asked to (a lost lease, a shutdown);
    what was done stays done, the rest is for the next run."""

    exit_code = 2
