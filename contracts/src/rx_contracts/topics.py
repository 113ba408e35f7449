"""Topic names. Pattern: ``<owner>.<stream>.v<N>``; dead letters go to ``<topic>.dlq``."""

from __future__ import annotations

from .vocabulary import ProviderType

REFERRAL_EVENTS = "referrals.events.v1"
"""Every change to a referral, published by the referrals service. Key: referral id."""

REFERRAL_ACCESS = "referrals.access.v1"
"""Who read which referral's patient data, published by the referrals service. Key: referral id."""

ROUTING_DECISIONS = "routing.decisions.v1"
"""Assignments and unroutable verdicts, published by the routing service. Key: referral id."""

ROUTING_SLA = "routing.sla.v1"
"""SLA warnings and breaches, published by the routing service's clock. Key: referral id."""

ROUTING_ESCALATIONS = "routing.escalations.v1"
"""Referrals operations staff must act on (unroutable, breached with no automatic remedy)."""

ROUTING_ADMIN = "routing.admin.v1"
"""Administrators' changes to routing's directory, rules and SLA policies (who, what, before
and after). Key: ``<subject>:<subject_id>``."""

NOTIFY_SUBSCRIPTIONS = "notify.subscriptions.v1"
"""Subscriptions created and changed, published by the notify service. Key: subscription id."""

AUDIT_CHECKPOINTS = "audit.checkpoints.v1"
"""Audit chain heads, so truncation of the audit log is detectable from outside its database."""

DEFAULT_PARTITIONS = 3
"""Referral streams default to 3 partitions; one referral's events stay on one of them."""


def provider_topic(provider_type: ProviderType | str) -> str:
    """The topic that carries referrals routed to organisations of ``provider_type``."""
    return f"provider.{ProviderType(provider_type).value}.v1"


DEAD_LETTER_SUFFIX = ".dlq"


def dead_letter_topic(topic: str) -> str:
    """Where a consumer of ``topic`` parks messages it can never process."""
    return f"{topic}{DEAD_LETTER_SUFFIX}"


def all_topics() -> dict[str, int]:
    """Every topic the platform uses, with its partition count (DLQs: one partition)."""
    streams = [
        REFERRAL_EVENTS,
        REFERRAL_ACCESS,
        ROUTING_DECISIONS,
        ROUTING_SLA,
        ROUTING_ESCALATIONS,
        ROUTING_ADMIN,
        *(provider_topic(t) for t in ProviderType),
    ]
    topics = {name: DEFAULT_PARTITIONS for name in streams}
    topics[AUDIT_CHECKPOINTS] = 1
    topics[NOTIFY_SUBSCRIPTIONS] = 1
    topics.update({dead_letter_topic(name): 1 for name in list(topics)})
    return topics
