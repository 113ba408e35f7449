"""The case routing keeps of a referral, as the handlers work on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..adapters.tables import CaseRow


@dataclass
class NewCase:
    """A submitted referral's case while it is first routed: the same fields as
    :class:`CaseRow`, queued in the write buffer once routing has decided (one insert per
    batch; an ORM object would cost more to build and flush than routing the referral)."""

    referral_id: str
    service_type: str
    priority: str
    postcode_district: str
    cohorts: list[str]
    submitted_at: datetime
    correlation_id: str
    declined_by: list[str] = field(default_factory=list)
    assigned_org: str | None = None
    provider_type: str | None = None
    attempt: int = 0
    decision_id: str | None = None
    status: str = "open"

    def row(self) -> dict[str, Any]:
        """The case's row (``dataclasses.asdict`` deep-copies, several times slower)."""
        return dict(self.__dict__)


Case = CaseRow | NewCase
"""A case being routed: a stored one (later events) or one about to be stored."""
