"""Which events travel on which topic, who publishes them and who reads them: the catalogue
the AsyncAPI document (``contracts/asyncapi.yaml``) is generated from."""

from __future__ import annotations

from dataclasses import dataclass

from . import events as ev
from .access import ReferralAccessed
from .admin import RoutingConfigChanged
from .audit import ChainCheckpointed
from .notify import NOTIFY_EVENTS
from .payload import Payload
from .sla import ReferralEscalated, SlaBreached, SlaWarning
from .topics import (
    AUDIT_CHECKPOINTS,
    NOTIFY_SUBSCRIPTIONS,
    REFERRAL_ACCESS,
    REFERRAL_EVENTS,
    ROUTING_ADMIN,
    ROUTING_DECISIONS,
    ROUTING_ESCALATIONS,
    ROUTING_SLA,
    provider_topic,
)
from .vocabulary import ProviderType

REFERRAL_CHANGES: tuple[type[ev.EventPayload], ...] = (
    ev.ReferralSubmitted,
    ev.ReferralAmended,
    ev.ReferralAccepted,
    ev.ReferralRejected,
    ev.ReferralRedirected,
    ev.ReferralStarted,
    ev.ReferralCompleted,
    ev.ReferralCancelled,
    ev.ReferralRerouted,
    ev.ReferralNhsNumberRecorded,
    ev.ReferralInfoRequested,
    ev.ReferralInfoProvided,
    ev.ReferralMessageAdded,
    ev.ReferralProgressReported,
    ev.ReferralFailed,
)
"""Every change the referrals service makes to a referral."""

TRANSITIONS: tuple[type[ev.EventPayload], ...] = REFERRAL_CHANGES[1:]
"""Changes after submission: what a provider type's topic forwards."""


@dataclass(frozen=True)
class Channel:
    """One topic: what it carries and between whom."""

    topic: str
    producer: str
    """The service that publishes to it."""
    consumers: tuple[str, ...]
    """Who subscribes, each with its own consumer group."""
    description: str
    events: tuple[type[Payload], ...]
    key: str = "The referral id, so one referral's events stay in order on one partition."
    """What the Kafka key of every record is."""


def channels() -> list[Channel]:
    """Every channel of the platform, in a stable order."""
    found = [
        Channel(
            REFERRAL_EVENTS,
            "referrals",
            ("routing", "audit", "notify"),
            "Every change to a referral, in order per referral (key: referral id).",
            REFERRAL_CHANGES,
        ),
        Channel(
            REFERRAL_ACCESS,
            "referrals",
            ("audit",),
            "Who read which referral's patient data, and when (the data itself is not in it).",
            (ReferralAccessed,),
        ),
        Channel(
            ROUTING_DECISIONS,
            "routing",
            ("referrals", "audit", "notify"),
            "Routing decisions: assignments and unroutable verdicts for ops.",
            (ev.ReferralRouted, ev.ReferralUnroutable),
        ),
        Channel(
            ROUTING_SLA,
            "routing",
            ("referrals", "audit", "notify"),
            "SLA clock warnings and breaches; the referrals service re-routes on an acceptance "
            "breach whose policy says so; notify tells the holding organisation's subscriptions.",
            (SlaWarning, SlaBreached),
        ),
        Channel(
            ROUTING_ESCALATIONS,
            "routing",
            ("operations staff", "audit"),
            "Referrals ops must act on: unroutable, or a clock ran out with no automatic remedy.",
            (ReferralEscalated,),
        ),
        Channel(
            ROUTING_ADMIN,
            "routing",
            ("audit",),
            "Administrators' changes to the directory, routing rules and SLA policies: who, "
            "what, before and after, published with the change itself.",
            (RoutingConfigChanged,),
            key="``<subject>:<subject_id>`` (``rule-set:east``), so one thing's changes stay "
            "in order.",
        ),
    ]
    found += [
        Channel(
            provider_topic(kind),
            "routing",
            (f"{kind.value} provider systems", "audit"),
            f"Referrals routed to {kind.value} organisations and everything that happens to "
            "them afterwards, including their SLA warnings and breaches (same event ids as on "
            "the source topics).",
            (ev.ReferralRouted, *TRANSITIONS, SlaWarning, SlaBreached),
        )
        for kind in ProviderType
    ]
    found.append(
        Channel(
            NOTIFY_SUBSCRIPTIONS,
            "notify",
            ("audit",),
            "Subscriptions to HTTPS notifications: who subscribed to what, where it is "
            "delivered (origin only), and every change of state.",
            NOTIFY_EVENTS,
            key="The subscription id.",
        )
    )
    found.append(
        Channel(
            AUDIT_CHECKPOINTS,
            "audit",
            ("audit", "external verifiers"),
            "Heads of the audit hash chain, so truncating or rewriting the audit log is "
            "detectable from outside its database.",
            (ChainCheckpointed,),
            key="The audit chain id.",
        )
    )
    return found
