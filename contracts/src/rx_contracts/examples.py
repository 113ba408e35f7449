"""Example payloads: valid events to start from in documentation and tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .events import Actor, ReferralRouted, ReferralSubmitted
from .vocabulary import Priority, ProviderType, ServiceType


def referral_submitted(referral_id: str = "r-1", **changes: Any) -> ReferralSubmitted:
    """An urgent community response referral from practice B81001 for a patient in BS5."""
    fields: dict[str, Any] = {
        "referral_id": referral_id,
        "sequence": 1,
        "version": 1,
        "actor": Actor(organisation="B81001", practitioner="G1234567"),
        "referrer_org": "B81001",
        "service_type": ServiceType.URGENT_COMMUNITY_RESPONSE,
        "priority": Priority.URGENT,
        "postcode_district": "BS5",
        "submitted_at": datetime.now(UTC),
    }
    return ReferralSubmitted(**(fields | changes))


def referral_routed(referral_id: str = "r-1", **changes: Any) -> ReferralRouted:
    """That referral assigned to rapid response team RXA01 in the east locality."""
    fields: dict[str, Any] = {
        "referral_id": referral_id,
        "decision_id": "d-1",
        "attempt": 1,
        "assigned_org": "RXA01",
        "provider_type": ProviderType.RAPID_RESPONSE,
        "service_type": ServiceType.URGENT_COMMUNITY_RESPONSE,
        "priority": Priority.URGENT,
        "locality": "east",
        "rule_id": "ucr-to-rapid-response",
        "rule_version": 1,
        "routed_at": datetime.now(UTC),
    }
    return ReferralRouted(**(fields | changes))
