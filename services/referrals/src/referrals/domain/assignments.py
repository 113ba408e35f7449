"""Assignments: each time routing gives a referral to an organisation, that organisation holds
one assignment until it completes the work, declines, or the referral is taken from it
(cancelled, re-routed, acceptance timeout). A new organisation gets a new assignment; an ended
one stays as it ended. The FHIR interface shows each assignment as a Task.

Statuses use the FHIR Task status codes, onto which the lifecycle maps one to one; the business
status says which lifecycle step put it there."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from .model import Transition


class AssignmentStatus(StrEnum):
    """An assignment's status (FHIR Task status codes)."""

    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ON_HOLD = "on-hold"
    """Waiting for the referrer to answer the organisation's question."""
    FAILED = "failed"
    """Accepted but could not be delivered."""


class EndReason(StrEnum):
    """Why an assignment ended other than by completion, when no rejection reason says it."""

    REDIRECTED = "redirected"
    """The organisation sent the referral elsewhere."""
    CANCELLED_BY_REFERRER = "cancelled-by-referrer"
    """The referrer withdrew the referral."""
    REROUTED = "rerouted"
    """Ops sent the referral back to routing."""


@dataclass(frozen=True)
class AssignmentState:
    """The assignment's own fields at one version of its referral."""

    status: AssignmentStatus
    business_status: str
    reason_code: str | None = None
    reason_text: str | None = None
    outcome: str | None = None
    outcome_text: str | None = None

    @property
    def open(self) -> bool:
        return self.status in (
            AssignmentStatus.REQUESTED,
            AssignmentStatus.ON_HOLD,
            AssignmentStatus.ACCEPTED,
            AssignmentStatus.IN_PROGRESS,
        )


OFFERED = AssignmentState(AssignmentStatus.REQUESTED, "routed")
"""A new assignment: routed to the organisation, not yet accepted."""


def after(step: Transition, current: AssignmentState | None) -> AssignmentState | None:
    """The open assignment's state after ``step`` (None when there is no open assignment
    before it or the step changes nothing of its own; a "route" step opens a new one)."""
    if step.action == "route":
        return OFFERED
    if current is None:
        return None
    note = step.note
    match step.action:
        case "accept":
            return replace(current, status=AssignmentStatus.ACCEPTED, business_status="accepted")
        case "start":
            return replace(
                current, status=AssignmentStatus.IN_PROGRESS, business_status="in-progress"
            )
        case "complete":
            return replace(
                current,
                status=AssignmentStatus.COMPLETED,
                business_status="completed",
                outcome=step.reason_code,
                outcome_text=note,
            )
        case "reject":
            return _ended(current, AssignmentStatus.REJECTED, "rejected", step.reason_code, note)
        case "redirect":
            return _ended(
                current, AssignmentStatus.REJECTED, "redirected", EndReason.REDIRECTED, note
            )
        case "cancel":
            return _ended(
                current,
                AssignmentStatus.CANCELLED,
                "cancelled",
                EndReason.CANCELLED_BY_REFERRER,
                note,
            )
        case "reroute":
            reason = step.reason_code or EndReason.REROUTED
            return _ended(current, AssignmentStatus.CANCELLED, "rerouted", reason, note)
        case "request-info":
            return replace(
                current, status=AssignmentStatus.ON_HOLD, business_status="info-requested"
            )
        case "provide-info":
            return replace(
                current, status=AssignmentStatus.REQUESTED, business_status="info-provided"
            )
        case "fail":
            return _ended(current, AssignmentStatus.FAILED, "failed", step.reason_code, note)
    # amend, message, report-progress: the assignment gets a new version, its own fields
    # unchanged
    return current


def _ended(
    current: AssignmentState,
    status: AssignmentStatus,
    business_status: str,
    reason: str | None,
    note: str | None,
) -> AssignmentState:
    return replace(
        current,
        status=status,
        business_status=business_status,
        reason_code=str(reason) if reason else None,
        reason_text=note,
    )
