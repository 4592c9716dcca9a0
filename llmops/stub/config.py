"""The stub model's knobs and its fault dice; called by its server, runner and CLI.

Pure. Faults are drawn from one seeded random generator, one draw per chat or
embeddings request, so a seed and the order of requests decide which ones fail.
``fault_script`` overrides the dice for the first requests, for tests that need "the
first call gets a 429, the second succeeds".
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from llmops.domain.errors import UsageError
from llmops.stub.rules import ECHO_PREFIX, Rule

FaultKind = Literal["429", "500", "timeout", "malformed", "truncate"]
#: Every fault, in the order the dice are read.
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)

FAULT_HELP: Mapping[FaultKind, str] = {
    "429": "429 Too Many Requests with a Retry-After header",
    "500": "500 Internal Server Error",
    "timeout": "hang for hang_seconds before answering (longer than a client's timeout)",
    "malformed": "200 with a body that is not JSON (a broken chunk when streaming)",
    "truncate": "a stream that ends before [DONE] (a JSON body cut in half otherwise)",
}


def parse_fault_kinds(text: str) -> tuple[FaultKind, ...]:
    """``"429,500"`` -> ``("429", "500")``; raises ``UsageError`` naming an unknown kind."""
    kinds: list[FaultKind] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part not in FAULT_KINDS:
            raise UsageError(f"unknown fault kind {part!r}; choose from {', '.join(FAULT_KINDS)}")
        kinds.append(part)
    return tuple(dict.fromkeys(kinds))


def spread_faults(rate: float, kinds: Sequence[FaultKind]) -> dict[FaultKind, float]:
    """A total fault ``rate`` shared equally by ``kinds``."""
    return {kind: rate / len(kinds) for kind in kinds} if kinds and rate > 0 else {}


@dataclass(frozen=True, slots=True)
class StubConfig:
    """How the stub answers. Times are in milliseconds (latency) or seconds (the rest)."""

    rules: tuple[Rule, ...] = ()
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    faults: Mapping[FaultKind, float] = field(default_factory=dict)
    fault_script: tuple[FaultKind | None, ...] = ()
    seed: int = 0
    retry_after_seconds: float = 1.0
    hang_seconds: float = 60.0
    embedding_dim: int = 64
    models: tuple[str, ...] = ("stub",)
    api_key: str | None = field(default=None, repr=False)
    echo_prefix: str = ECHO_PREFIX

    def __post_init__(self) -> None:
        problems = []
        for name in ("latency_ms", "jitter_ms", "retry_after_seconds", "hang_seconds"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be ≥ 0")
        for kind, rate in self.faults.items():
            if kind not in FAULT_KINDS:
                problems.append(f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
            elif not 0 <= rate <= 1:
                problems.append(f"fault rate for {kind} must be within 0..1 (got {rate})")
        if sum(self.faults.values()) > 1 + 1e-9:
            problems.append(f"fault rates add up to {sum(self.faults.values()):g}, more than 1")
        for scripted in self.fault_script:
            if scripted is not None and scripted not in FAULT_KINDS:
                problems.append(f"unknown fault kind {scripted!r} in fault_script")
        if self.embedding_dim < 1:
            problems.append("embedding_dim must be ≥ 1")
        if problems:
            raise UsageError("stub model configuration: " + "; ".join(problems))


class FaultDice:
    """Which fault, if any, the next request gets."""

    def __init__(self, config: StubConfig) -> None:
        self._rates = [(kind, config.faults.get(kind, 0.0)) for kind in FAULT_KINDS]
        self._script: deque[FaultKind | None] = deque(config.fault_script)
        self._rng = random.Random(config.seed)

    def script(self, faults: Sequence[FaultKind | None]) -> None:
        """Queue faults for the next requests, after any still scripted."""
        self._script.extend(faults)

    def roll(self) -> FaultKind | None:
        """The scripted fault while the script lasts, then one draw against the rates."""
        if self._script:
            return self._script.popleft()
        draw = self._rng.random()
        total = 0.0
        for kind, rate in self._rates:
            total += rate
            if draw < total:
                return kind
        return None
