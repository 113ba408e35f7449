"""Referral Exchange contracts: event envelope, payloads, vocabularies and topic names."""

from .access import AccessedData, ReferralAccessed
from .admin import AdminAction, AdminSubject, RoutingConfigChanged
from .audit import ChainCheckpointed
from .envelope import Envelope, EnvelopeError, KafkaRecord, decode, encode, wrap
from .events import (
    Actor,
    CohortFlags,
    EventPayload,
    ReferralAccepted,
    ReferralAmended,
    ReferralCancelled,
    ReferralCompleted,
    ReferralNhsNumberRecorded,
    ReferralRedirected,
    ReferralRejected,
    ReferralRerouted,
    ReferralRouted,
    ReferralStarted,
    ReferralSubmitted,
    ReferralTransitioned,
    ReferralUnroutable,
    SharingFlags,
)
from .identity import Identity, Role
from .ids import new_id
from .payload import Payload
from .registry import EVENT_TYPES
from .sla import (
    ClockKind,
    EscalationCause,
    ReferralEscalated,
    RerouteReason,
    SlaBreached,
    SlaWarning,
)
from .vocabulary import (
    NhsNumberVerification,
    Outcome,
    Priority,
    ProviderType,
    ReferralStatus,
    RejectionReason,
    ServiceType,
    SharingBasis,
)

__all__ = [
    "EVENT_TYPES",
    "AccessedData",
    "Actor",
    "AdminAction",
    "AdminSubject",
    "ChainCheckpointed",
    "ClockKind",
    "CohortFlags",
    "Envelope",
    "EnvelopeError",
    "EscalationCause",
    "EventPayload",
    "Identity",
    "KafkaRecord",
    "NhsNumberVerification",
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
    "ReferralNhsNumberRecorded",
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
    "RoutingConfigChanged",
    "ServiceType",
    "SharingBasis",
    "SharingFlags",
    "SlaBreached",
    "SlaWarning",
    "decode",
    "encode",
    "new_id",
    "wrap",
]
