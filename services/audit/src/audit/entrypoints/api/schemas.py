"""What the audit API answers (entries, timelines, verification)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from ...domain.figures import Cohort
from ...domain.verification import Verdict


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
    accessed: str | None = Field(
        default=None,
        description="Which part of the referral was read, for a read (ReferralAccessed): "
        "referral, attachment-list, attachment, communications. Given as the event said it, "
        "so a part named after this service was built shows too.",
    )
    topic: str = Field(description="Kafka topic it was read from.")
    occurred_at: datetime = Field(description="When it happened (UTC).")
    elapsed_seconds: float = Field(description="Seconds since the referral was submitted.")


class ForgedCheckpointPublic(BaseModel):
    """A checkpoint on the topic the audit service did not sign."""

    sequence: int = Field(description="The entry it claims to vouch for.")
    hash: str = Field(description="The hash it claims that entry has.")
    checkpointed_at: datetime = Field(description="When it claims the head was read.")
    offset: int = Field(description="Its offset on the checkpoint topic.")
    kid: str | None = Field(description="The published key its signature names, if any.")
    problem: str = Field(
        description="What is wrong: no signature, not a JWS, a key that is not published, "
        "a signature that does not verify, or one over another checkpoint."
    )


class VerificationPublic(BaseModel):
    """The outcome of verifying the whole chain."""

    ok: bool = Field(
        description="Every entry fits, every genuine checkpoint matches, none is forged."
    )
    verdict: Verdict = Field(
        description="tampered: an entry does not fit (first_broken says which); "
        "forged-checkpoint: the entries fit the genuine checkpoints but the topic carries "
        "checkpoints the audit service did not sign (forged lists them); unvouched: the "
        "checkpoints could not be read; intact."
    )
    entries: int = Field(description="Entries checked.")
    head_sequence: int = Field(description="Sequence of the head row when verification began.")
    head_hash: str = Field(description="Hash of the head row when verification began.")
    chain_id: str | None = Field(description="Id of the chain.")
    checkpoints: int = Field(description="Genuine (signed) checkpoints compared with the chain.")
    first_broken: int | None = Field(description="First entry that does not fit, if any.")
    problem: str | None = Field(description="What is wrong, if anything.")
    forged: list[ForgedCheckpointPublic] = Field(
        description="Checkpoints of this chain on the topic that the audit service did not sign."
    )


class Jwk(BaseModel):
    """A public key (RFC 7517): Ed25519 (kty OKP) or P-256 (kty EC)."""

    model_config = {"extra": "allow"}

    kty: str = Field(examples=["OKP"])
    kid: str = Field(description="Named in the `kid` header of the signatures it makes.")
    alg: str = Field(examples=["EdDSA"])
    use: str = Field(examples=["sig"])
    crv: str = Field(examples=["Ed25519"])
    x: str


class Jwks(BaseModel):
    """A JWK Set: the newest key first."""

    keys: list[Jwk]


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


class OrganisationRejections(BaseModel):
    organisation: str = Field(description="ODS code of the organisation that declined.")
    reason: str = Field(description="Rejection reason code.")
    count: int


class OutcomeShare(BaseModel):
    """How many of the referrals that ended, ended this way."""

    state: str = Field(
        description="End state: completed, failed or cancelled.", examples=["completed"]
    )
    outcome: str | None = Field(
        description="Outcome code of a completed referral, or the reason code of a failed or "
        "cancelled one; null where the event gave none (a cancellation with text only)."
    )
    count: int
    share: float = Field(description="count / every referral that ended.")


class ServiceOutcomeShare(OutcomeShare):
    """How many of the referrals of one service type that ended, ended this way."""

    service_type: str = Field(examples=["urgent-community-response"])
    share: float = Field(description="count / every referral of this service type that ended.")


class AnswerDurations(BaseModel):
    """Time from a question to its answer, for the questions one organisation asked."""

    group: str = Field(description="ODS code of the organisation that asked.")
    count: int = Field(description="Answered questions.")
    median_seconds: float = Field(description="Median time to the answer.")
    p90_seconds: float = Field(description="90th percentile (linear interpolation).")


class QuestionTurnaround(BaseModel):
    """Questions the assigned organisation asked the referrer (``info_requested``), and how
    long the answers took."""

    referrals_asked: int = Field(description="Referrals that had at least one question.")
    questions: int = Field(description="Questions asked.")
    answered: int = Field(description="Questions answered.")
    unanswered: int = Field(description="Questions not answered (yet, or ever).")
    median_seconds: float | None = Field(
        description="Median time from question to answer; null when none was answered."
    )
    p90_seconds: float | None = Field(
        description="90th percentile (linear interpolation); null when none was answered."
    )
    by_organisation: list[AnswerDurations]


class EndReasonCount(BaseModel):
    organisation: str = Field(description="ODS code of the organisation that ended it.")
    reason: str | None = Field(description="Reason code; null where the event gave none.")
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


class Known(BaseModel):
    """What there are figures for, to choose a selection from (whatever is selected now)."""

    localities: list[str] = Field(description="Localities referrals were routed in.")
    organisations: list[str] = Field(description="Referrers and organisations routed to.")


class FiguresPublic(BaseModel):
    """Evaluation figures for the referrals submitted in [since, until), of the organisation,
    locality and cohort asked for (null: any)."""

    since: datetime | None
    until: datetime | None
    organisation: str | None = Field(description="Only the referrals it sent or holds or held.")
    locality: str | None
    cohort: Cohort | None
    as_of: datetime = Field(description="The time pending referrals were judged at.")
    time_to_accept: TimeToAccept
    rapid_response: RapidResponse
    rejections_by_reason: list[ReasonCount]
    rejections_by_organisation: list[OrganisationRejections]
    question_turnaround: QuestionTurnaround
    failures_by_organisation: list[EndReasonCount] = Field(
        description="Accepted referrals that could not be delivered, by the organisation and "
        "its reason."
    )
    cancellations_by_organisation: list[EndReasonCount] = Field(
        description="Cancelled referrals, by the organisation that cancelled (the referrer) "
        "and its reason."
    )
    outcome_mix: list[OutcomeShare]
    outcome_mix_by_service_type: list[ServiceOutcomeShare]
    outcomes_by_cohort: list[CohortOutcome]
    outcomes_by_locality: list[LocalityOutcome]
    flows: list[Flow]
    daily: list[Day]
    known: Known
