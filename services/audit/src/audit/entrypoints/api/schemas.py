"""What the audit API answers (entries, timelines, verification)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class EntryPublic(BaseModel):
    """One recorded event and its place in the hash chain."""

    sequence: int = Field(description="Position in the chain (1, 2, …); the stream's event id.")
    event_id: str = Field(description="CloudEvents id of the event.")
    type: str = Field(description="CloudEvents type, e.g. rx.referrals.ReferralAccepted.v1.")
    referral_id: str | None = Field(description="The referral it is about, if any.")
    actor_org: str | None = Field(description="Organisation that acted ('RX': the platform).")
    topic: str = Field(description="Kafka topic it was read from.")
    partition: int = Field(description="Kafka partition.")
    offset: int = Field(description="Kafka offset.")
    occurred_at: datetime = Field(description="When the event happened (UTC).")
    recorded_at: datetime = Field(description="When the audit service recorded it (UTC).")
    payload: dict[str, Any] = Field(description="The event's data.")
    payload_digest: str = Field(description="SHA-256 of the canonical JSON of the payload.")
    prev_hash: str = Field(description="Hash of the previous entry.")
    hash: str = Field(description="Hash of this entry (covers prev_hash and every field).")


class EntryPage(BaseModel):
    """A page of entries in chain order."""

    items: list[EntryPublic]
    next_cursor: str | None = Field(
        description="Pass as cursor for the next page; null at the end."
    )


class TimelineStep(BaseModel):
    """One event of a referral's journey, with the time since it was submitted."""

    sequence: int = Field(description="Chain sequence of the entry.")
    event_id: str = Field(description="CloudEvents id.")
    type: str = Field(description="CloudEvents type.")
    actor_org: str | None = Field(description="Organisation that acted ('RX': the platform).")
    actor_practitioner: str | None = Field(description="Practitioner who acted, if any.")
    status: str | None = Field(description="Referral status after the event, where it says.")
    assigned_org: str | None = Field(description="Organisation holding the referral after it.")
    topic: str = Field(description="Kafka topic it was read from.")
    occurred_at: datetime = Field(description="When it happened (UTC).")
    elapsed_seconds: float = Field(description="Seconds since the referral was submitted.")


class VerificationPublic(BaseModel):
    """The outcome of verifying the whole chain."""

    ok: bool = Field(description="Every entry fits and every published checkpoint matches.")
    entries: int = Field(description="Entries checked.")
    head_sequence: int = Field(description="Sequence of the head row when verification began.")
    head_hash: str = Field(description="Hash of the head row when verification began.")
    chain_id: str | None = Field(description="Id of the chain.")
    checkpoints: int = Field(description="Published checkpoints compared with the chain.")
    first_broken: int | None = Field(description="First entry that does not fit, if any.")
    problem: str | None = Field(description="What is wrong, if anything.")


class Durations(BaseModel):
    """Time from submission to acceptance for one group of referrals."""

    group: str = Field(description="Service type or accepting organisation.")
    count: int = Field(description="Accepted referrals in the group.")
    median_seconds: float = Field(description="Median time to acceptance.")
    p90_seconds: float = Field(description="90th percentile (linear interpolation).")


class TimeToAccept(BaseModel):
    by_service_type: list[Durations]
    by_organisation: list[Durations]


class RapidResponse(BaseModel):
    """Urgent community response referrals against the 2-hour standard."""

    standard_seconds: float = Field(description="The standard: 7200 (2 hours).")
    answered_within: int = Field(description="Accepted within the standard.")
    due: int = Field(description="Accepted, or whose 2 hours are up.")
    pending: int = Field(description="Not accepted yet, still within their 2 hours.")
    share: float | None = Field(description="answered_within / due; null when none are due.")


class ReasonCount(BaseModel):
    reason: str = Field(description="Rejection reason code.")
    count: int


class CohortOutcome(BaseModel):
    cohort: str = Field(description="care-home-resident, frailty, end-of-life or none.")
    outcome: str = Field(description="Outcome code of the completed referral.")
    count: int


class LocalityOutcome(BaseModel):
    locality: str = Field(description="Locality of the referral's last routing.")
    outcome: str = Field(description="Outcome code of the completed referral.")
    count: int


class Flow(BaseModel):
    from_: str = Field(
        alias="from", description="Provider type that held it before ('referrer' at first)."
    )
    to: str = Field(description="Provider type it was routed to.")
    count: int


class Day(BaseModel):
    day: str = Field(description="UTC date, YYYY-MM-DD.")
    submitted: int
    accepted: int
    rejected: int
    completed: int


class FiguresPublic(BaseModel):
    """Evaluation figures for the referrals submitted in [since, until)."""

    since: datetime | None
    until: datetime | None
    as_of: datetime = Field(description="The time pending referrals were judged at.")
    time_to_accept: TimeToAccept
    rapid_response: RapidResponse
    rejections_by_reason: list[ReasonCount]
    outcomes_by_cohort: list[CohortOutcome]
    outcomes_by_locality: list[LocalityOutcome]
    flows: list[Flow]
    daily: list[Day]
