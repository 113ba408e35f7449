"""Referral Exchange contracts: event envelope, payloads, vocabularies and topic names."""

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
from .payload import Payload
from .vocabulary import (
    Outcome,
    Priority,
    ProviderType,
    ReferralStatus,
    RejectionReason,
    ServiceType,
)

__all__ = [
    "EVENT_TYPES",
    "Actor",
    "ChainCheckpointed",
    "CohortFlags",
    "Envelope",
    "EnvelopeError",
    "EventPayload",
    "Identity",
    "KafkaRecord",
    "Outcome",
    "Payload",
    "Priority",
    "ProviderType",
    "ReferralAccepted",
    "ReferralAmended",
    "ReferralCancelled",
    "ReferralCompleted",
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
    "Role",
    "ServiceType",
    "decode",
    "encode",
    "wrap",
]
