"""Conditions, reasons and phases of a reconcile pass: closed sets of constants. Pure.

Written by the steps in ``llmops.ops.reconcile`` into ``llmops.reconcile.result`` values;
read by the CLI, ``llmops up`` and the controller (metrics, events). As in Flux and
Kubernetes, each app in each environment carries named conditions ``(type, status,
reason, message)``; the phase is a closed, ordered enum rolled up worst-of (Argo CD's
health order), so one number says how a stage or a whole pass stands.
"""

from __future__ import annotations

from typing import Literal

Status = Literal["True", "False", "Unknown"]
TRUE: Status = "True"
FALSE: Status = "False"
UNKNOWN: Status = "Unknown"

# --------------------------------------------------------------------------- phases

Phase = Literal["Ready", "Progressing", "Waiting", "Degraded", "Failed"]
#: best first; a roll-up takes the worst
PHASE_ORDER: tuple[Phase, ...] = ("Ready", "Progressing", "Waiting", "Degraded", "Failed")


def worst(phases: list[Phase] | tuple[Phase, ...]) -> Phase:
    """The worst phase of ``phases`` (Ready for none)."""
    return max(phases, key=PHASE_ORDER.index, default="Ready")


# --------------------------------------------------------------------------- step status

StepStatus = Literal["done", "skipped", "waiting", "refused", "failed"]
#: statuses that end an app's steps in this stage
STOPS: frozenset[str] = frozenset({"waiting", "refused", "failed"})

# --------------------------------------------------------------------------- conditions
#: The desired release's bundle is archived (source stage: the work tree's release).
RELEASED = "Released"
#: The desired release has passing gate evidence for this stage.
GATE_PASSED = "GatePassed"
#: An image of the desired release exists (docker and kubernetes targets).
IMAGE_BUILT = "ImageBuilt"
#: The target runs the desired release, ready.
DEPLOYED = "Deployed"
#: The live objects match what llmops applied (no hand-made changes).
IN_SYNC = "InSync"
#: The release moved on to the next stage (or why it waits).
PROMOTED = "Promoted"

CONDITIONS: tuple[str, ...] = (RELEASED, GATE_PASSED, IMAGE_BUILT, DEPLOYED, IN_SYNC, PROMOTED)

# --------------------------------------------------------------------------- reasons
# Released
ARCHIVED = "Archived"
ALREADY_ARCHIVED = "AlreadyArchived"
PINNED = "Pinned"
RELEASE_FAILED = "ReleaseFailed"
# GatePassed
EVIDENCE_PRESENT = "EvidencePresent"
GATE_RAN = "GateRan"
GATE_FAILED = "GateFailed"
EVIDENCE_MISSING = "EvidenceMissing"
MARKED_BAD = "MarkedBad"
# ImageBuilt
NOT_NEEDED = "NotNeeded"
BUILT = "Built"
ALREADY_BUILT = "AlreadyBuilt"
BUILD_FAILED = "BuildFailed"
NOT_BUILT = "NotBuilt"
# Deployed
UP_TO_DATE = "UpToDate"
APPLIED = "Applied"
WOULD_APPLY = "WouldApply"
ROLLED_BACK = "RolledBack"
APPLY_FAILED = "ApplyFailed"
BLOCKED = "Blocked"
NOT_READY = "NotReady"
PRUNED = "Pruned"
LEDGER_REPAIRED = "LedgerRepaired"
# InSync
NO_DRIFT = "NoDrift"
DRIFT_CORRECTED = "DriftCorrected"
DRIFT_REPORTED = "DriftReported"
# Promoted
LAST_STAGE = "LastStage"
ALREADY_PROMOTED = "AlreadyPromoted"
COMMITTED = "Committed"
PROPOSED = "Proposed"
APPROVED_LOCALLY = "ApprovedLocally"
WOULD_PROMOTE = "WouldPromote"
NOT_RUNNING = "NotRunning"
PROMOTION_FAILED = "PromotionFailed"
# every step
ERROR = "Error"
