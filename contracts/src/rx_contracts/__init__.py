"""Referral Exchange contracts: event envelope, payloads, vocabularies and topic names."""

from .envelope import Envelope, EnvelopeError, KafkaRecord, decode, encode, wrap
from .events import (
    EVENT_TYPES,
    Actor,
    CohortFlags,
    EventPayload,
    ReferralRouted,
    ReferralSubmitted,
    ReferralUnroutable,
)
from .vocabulary import Priority, ProviderType, ReferralStatus, ServiceType

__all__ = [
    "EVENT_TYPES",
    "Actor",
    "CohortFlags",
    "Envelope",
    "EnvelopeError",
    "EventPayload",
    "KafkaRecord",
    "Priority",
    "ProviderType",
    "ReferralRouted",
    "ReferralStatus",
    "ReferralSubmitted",
    "ReferralUnroutable",
    "ServiceType",
    "decode",
    "encode",
    "wrap",
]
