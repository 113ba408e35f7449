"""Governed administrative changes: who changed routing's directory, rules or SLA policies,
and what each was before and after.

Published by the routing service on ``routing.admin.v1`` in the same transaction as the
change itself, so every change that took effect is on the audit chain. A change that leaves
everything as it was publishes nothing."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field

from .events import Actor
from .payload import Payload


class AdminSubject(StrEnum):
    """What kind of thing an administrator changed."""

    LOCALITY = "locality"
    """A locality and the postcode districts it covers (``subject_id``: its code)."""
    ORGANISATION = "organisation"
    """A directory entry (``subject_id``: its ODS code)."""
    RULE_SET = "rule-set"
    """A locality's routing rules (``subject_id``: the locality's code)."""
    SLA_POLICY = "sla-policy"
    """The SLA policy of a service type and priority (``subject_id``: ``<service
    type>/<priority>``, ``*`` for the service type's other priorities)."""


class AdminAction(StrEnum):
    """What was done to it."""

    CREATED = "created"
    """It did not exist before (``before`` is null); for rule sets, a new inactive version."""
    REPLACED = "replaced"
    """Its details were replaced."""
    ACTIVATED = "activated"
    """A rule set version became the locality's live rules."""


class RoutingConfigChanged(Payload):
    """An administrator changed routing's directory, rules or SLA policies."""

    EVENT_TYPE: ClassVar[str] = "rx.routing.RoutingConfigChanged.v1"

    change_id: str = Field(
        min_length=1, max_length=64, description="Id of this change in the routing service."
    )
    actor: Actor = Field(description="The administrator's organisation and, where given, person.")
    subject: AdminSubject = Field(description="What kind of thing was changed.")
    subject_id: str = Field(
        min_length=1,
        max_length=200,
        description="Which one: a locality code, an ODS code, or ``<service type>/<priority>``.",
        examples=["east", "RXA01", "urgent-community-response/*"],
    )
    action: AdminAction = Field(description="What was done to it.")
    before: dict[str, Any] | None = Field(
        description="Its administered fields before the change, as the routing API shows "
        "them; null if it did not exist. For an activation: ``{active_version}`` before.",
        examples=[{"accept_within_seconds": 1800, "respond_within_seconds": 7200}],
    )
    after: dict[str, Any] = Field(
        description="Its administered fields after the change; for an activation: "
        "``{active_version}`` after.",
        examples=[{"accept_within_seconds": 900, "respond_within_seconds": 7200}],
    )
    changed_at: datetime = Field(description="When the change took effect (UTC).")

    @property
    def key(self) -> str:
        """Kafka key: ``<subject>:<subject_id>``, so one thing's changes stay in order."""
        return f"{self.subject.value}:{self.subject_id}"
