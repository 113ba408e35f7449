"""Referral Exchange contracts: event envelope, payloads, vocabularies and topic names."""

from .access import AccessedData, ReferralAccessed
from .audit import ChainCheckpointed
from .envelope import Envelope, EnvelopeError, KafkaRecord, decode, encode, wrap
from .events import (
    EVENT_TYPES,
    Actor,
    CohortFlags,
    EventPayload,
    ReferralAccepted,
    ReferralAmended,
    ReferralCancelled,
    ReferralCompleted,
    ReferralRedirected,
    ReferralRejected,
    ReferralRerouted,
    ReferralRouted,
    ReferralStarted,
    ReferralSubmitted,
    ReferralTransitioned,
    ReferralUnroutable,
)
from .identity import Identity, Role
from .ids import new_id
from .notify import NOTIFY_EVENTS, SubscriptionChanged, SubscriptionCreated, SubscriptionState
from .payload import Payload
from .sla import (
    ClockKind,
    EscalationCause,
    ReferralEscalated,
    RerouteReason,
    SlaBreached,
    SlaWarning,
)
from .vocabulary import (
    Outcome,
    Priority,
    ProviderType,
    ReferralStatus,
    RejectionReason,
    ServiceType,
)

# Payloads of their own modules (they build on events.py, so they register here).
EVENT_TYPES[ReferralAccessed.EVENT_TYPE] = ReferralAccessed
EVENT_TYPES.update({cls.EVENT_TYPE: cls for cls in NOTIFY_EVENTS})

__all__ = [
    "EVENT_TYPES",
    "AccessedData",
    "Actor",
    "ChainCheckpointed",
    "ClockKind",
    "CohortFlags",
    "Envelope",
    "EnvelopeError",
    "EscalationCause",
    "EventPayload",
    "Identity",
    "KafkaRecord",
    "Outcome",
    "Payload",
    "Priority",
    "ProviderType",
    "ReferralAccepted",
    "ReferralAccessed",
    "ReferralAmended",
    "ReferralCancelled",
    "ReferralCompleted",
    "ReferralEscalated",
    "ReferralRedirected",
    "ReferralRejected",
    "ReferralRerouted",
    "ReferralRouted",
    "ReferralStarted",
    "ReferralStatus",
    "ReferralSubmitted",
    "ReferralTransitioned",
    "ReferralUnroutable",
    "RejectionReason",
    "RerouteReason",
    "Role",
    "ServiceType",
    "SlaBreached",
    "SlaWarning",
    "SubscriptionChanged",
    "SubscriptionCreated",
    "SubscriptionState",
    "decode",
    "encode",
    "new_id",
    "wrap",
]
