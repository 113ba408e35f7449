"""What a subscription can subscribe to: two topics, each a role the subscribing organisation
plays in a referral and the kinds of event it hears of in that role.

- *referrals offered to us* (the assigned organisation): the offer, every change while it holds
  the referral (amended, cancelled, messages, the referrer's answer, an NHS number recorded, its
  own accept, question, start, interim updates, completion and failure), the event that takes
  it away (its own rejection or redirection, a re-route by ops or an acceptance timeout) and
  the SLA warnings and breaches of its assignment;
- *referrals we sent* (the referrer): everything that happens to its referrals — submitted,
  routed, unroutable, accepted, rejected, redirected, re-routed, questions and answers,
  messages, interim updates, started, completed with the outcome or failed, amended, an NHS
  number recorded, cancelled — which closes the loop for the referring organisation."""

from __future__ import annotations

from enum import StrEnum

TOPIC_BASE = "http://referral-exchange.example.org/fhir/SubscriptionTopic/"
"""Canonical URLs of the topics (identifiers, as FHIR SubscriptionTopic.url; not fetched)."""


class Topic(StrEnum):
    OFFERED = "referrals-offered"
    SENT = "referrals-sent"

    @property
    def url(self) -> str:
        """The topic's canonical URL (FHIR Subscription.criteria)."""
        return TOPIC_BASE + self.value

    @classmethod
    def from_url(cls, url: str) -> Topic | None:
        for topic in cls:
            if url in (topic.url, topic.value):
                return topic
        return None


class Kind(StrEnum):
    """What happened to a referral, as subscribers see it (the event types' short names)."""

    SUBMITTED = "submitted"
    ROUTED = "routed"
    UNROUTABLE = "unroutable"
    AMENDED = "amended"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    REDIRECTED = "redirected"
    STARTED = "started"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REROUTED = "rerouted"
    INFO_REQUESTED = "info-requested"
    INFO_PROVIDED = "info-provided"
    MESSAGE_ADDED = "message-added"
    PROGRESS_REPORTED = "progress-reported"
    FAILED = "failed"
    NHS_NUMBER_RECORDED = "nhs-number-recorded"
    SLA_WARNING = "sla-warning"
    SLA_BREACHED = "sla-breached"


EVENT_KINDS: dict[str, Kind] = {
    "rx.referrals.ReferralSubmitted.v1": Kind.SUBMITTED,
    "rx.routing.ReferralRouted.v1": Kind.ROUTED,
    "rx.routing.ReferralUnroutable.v1": Kind.UNROUTABLE,
    "rx.referrals.ReferralAmended.v1": Kind.AMENDED,
    "rx.referrals.ReferralAccepted.v1": Kind.ACCEPTED,
    "rx.referrals.ReferralRejected.v1": Kind.REJECTED,
    "rx.referrals.ReferralRedirected.v1": Kind.REDIRECTED,
    "rx.referrals.ReferralStarted.v1": Kind.STARTED,
    "rx.referrals.ReferralCompleted.v1": Kind.COMPLETED,
    "rx.referrals.ReferralCancelled.v1": Kind.CANCELLED,
    "rx.referrals.ReferralRerouted.v1": Kind.REROUTED,
    "rx.referrals.ReferralInfoRequested.v1": Kind.INFO_REQUESTED,
    "rx.referrals.ReferralInfoProvided.v1": Kind.INFO_PROVIDED,
    "rx.referrals.ReferralMessageAdded.v1": Kind.MESSAGE_ADDED,
    "rx.referrals.ReferralProgressReported.v1": Kind.PROGRESS_REPORTED,
    "rx.referrals.ReferralFailed.v1": Kind.FAILED,
    "rx.referrals.ReferralNhsNumberRecorded.v1": Kind.NHS_NUMBER_RECORDED,
    "rx.routing.SlaWarning.v1": Kind.SLA_WARNING,
    "rx.routing.SlaBreached.v1": Kind.SLA_BREACHED,
}
"""The event types notify acts on; every other type on its topics is ignored. Every numbered
event of the referrals service must be here: one left out would leave a hole in its referral's
sequence and hold back every later event."""

DECISIONS = frozenset({Kind.ROUTED, Kind.UNROUTABLE})
CLOCKS = frozenset({Kind.SLA_WARNING, Kind.SLA_BREACHED})
ENTRIES = frozenset({Kind.SUBMITTED, Kind.REJECTED, Kind.REDIRECTED, Kind.REROUTED})
"""Events after which the referral waits in ``submitted`` for routing's next decision."""

TOPIC_KINDS: dict[Topic, frozenset[Kind]] = {
    Topic.OFFERED: frozenset(Kind) - {Kind.SUBMITTED, Kind.UNROUTABLE},
    Topic.SENT: frozenset(Kind) - CLOCKS,
}
"""Which kinds of event each topic carries (entitlement narrows them per referral)."""
