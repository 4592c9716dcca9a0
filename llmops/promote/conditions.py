"""Condition types and reasons of promotion and rollback plans: a closed set of constants.

Written by ``llmops.promote.plan``; read by ``llmops.ops.promote`` (to decide), the CLI
(to print) and tests. A plan is a list of checks, each ``(condition, status, reason,
message)`` as in Kubernetes and Flux conditions: ``status`` is "True" (satisfied),
"False" (refused: the message says what to do) or "Unknown" (apply will find out, e.g.
by running the target's gate).
"""

from __future__ import annotations

from typing import Literal

CheckStatus = Literal["True", "False", "Unknown"]
TRUE: CheckStatus = "True"
FALSE: CheckStatus = "False"
UNKNOWN: CheckStatus = "Unknown"

# --------------------------------------------------------------------------- conditions
#: Which release would be pinned, and where it comes from.
CANDIDATE_RESOLVED = "CandidateResolved"
#: The candidate's bundle is in the archive (so every stage deploys the same bytes).
CANDIDATE_ARCHIVED = "CandidateArchived"
#: Nobody marked the candidate bad.
CANDIDATE_NOT_BAD = "CandidateNotMarkedBad"
#: Passing gate evidence for every stage before the target.
EARLIER_GATES_PASSED = "EarlierGatesPassed"
#: Passing gate evidence for the target stage itself.
TARGET_GATE_PASSED = "TargetGatePassed"
#: The candidate ran in the previous stage for the target's ``soak``.
SOAK_ELAPSED = "SoakElapsed"
#: ``approval: required`` is met (a pull request is the approval).
APPROVAL_SATISFIED = "ApprovalSatisfied"
#: No hold on automatic promotion of this app into the target.
NOT_HELD = "NotHeld"
#: No other promotion (or rollback) of this app into the target is proposed.
NOT_IN_FLIGHT = "NoPromotionInFlight"
#: Rollback with ``--to``: the release ran in this environment before.
RAN_IN_ENVIRONMENT = "RanInEnvironment"
#: The pin change itself.
PIN_CHANGE = "PinChange"

CONDITIONS: tuple[str, ...] = (
    CANDIDATE_RESOLVED,
    CANDIDATE_ARCHIVED,
    CANDIDATE_NOT_BAD,
    RAN_IN_ENVIRONMENT,
    EARLIER_GATES_PASSED,
    TARGET_GATE_PASSED,
    SOAK_ELAPSED,
    APPROVAL_SATISFIED,
    NOT_HELD,
    NOT_IN_FLIGHT,
    PIN_CHANGE,
)

# --------------------------------------------------------------------------- reasons
# CandidateResolved
PINNED_IN_PREVIOUS_STAGE = "PinnedInPreviousStage"
WORK_TREE_RELEASE = "WorkTreeRelease"
NOTHING_PINNED = "NothingPinned"
LAST_GOOD_RELEASE = "LastGoodRelease"
EXPLICIT_RELEASE = "ExplicitRelease"
NO_EARLIER_RELEASE = "NoEarlierRelease"
# CandidateArchived
BUNDLE_ARCHIVED = "BundleArchived"
WORK_TREE_WILL_BE_ARCHIVED = "WorkTreeWillBeArchived"
BUNDLE_MISSING = "BundleMissing"
# CandidateNotMarkedBad
NOT_MARKED_BAD = "NotMarkedBad"
MARKED_BAD = "MarkedBad"
FORCED_PAST_MARKED_BAD = "ForcedPastMarkedBad"
# RanInEnvironment
RAN_HERE = "RanHere"
NEVER_RAN_HERE = "NeverRanHere"
# EarlierGatesPassed / TargetGatePassed
FIRST_STAGE = "FirstStage"
EVIDENCE_PRESENT = "EvidencePresent"
EVIDENCE_MISSING = "EvidenceMissing"
GATE_FAILED = "GateFailed"
REPORT_MISSING = "ReportMissing"
EVIDENCE_STALE = "EvidenceStale"
EVALS_WILL_RUN = "EvalsWillRun"
# SoakElapsed
NO_SOAK_REQUIRED = "NoSoakRequired"
SOAK_DONE = "SoakDone"
SOAK_PENDING = "SoakPending"
SOAK_UNMEASURABLE = "SoakUnmeasurable"
SOAK_WAIVED = "SoakWaived"
# ApprovalSatisfied
APPROVAL_NOT_REQUIRED = "ApprovalNotRequired"
PULL_REQUEST_IS_APPROVAL = "PullRequestIsApproval"
APPROVAL_REQUIRES_PULL_REQUEST = "ApprovalRequiresPullRequest"
# NotHeld
NO_HOLD = "NoHold"
HOLD_ACTIVE = "HoldActive"
# NoPromotionInFlight
NOTHING_IN_FLIGHT = "NothingInFlight"
BRANCH_EXISTS = "PromotionBranchExists"
PULL_REQUEST_OPEN = "PullRequestOpen"
NOT_CHECKED = "NotChecked"
# PinChange
PIN_WILL_CHANGE = "PinWillChange"
ALREADY_PINNED = "AlreadyPinned"
