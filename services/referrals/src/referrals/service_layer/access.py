"""Recording reads of patient-identifying data: an access-record row and its
ReferralAccessed event in the outbox (``referrals.access.v1``), in the read's own transaction,
so a read that returned data is always on the audit stream too."""

from __future__ import annotations

from datetime import UTC, datetime

from rx_contracts import AccessedData, ReferralAccessed, new_id, wrap
from rx_contracts.topics import REFERRAL_ACCESS

from ..domain.caller import Caller
from .unit_of_work import SOURCE, UnitOfWork


def record_access(
    uow: UnitOfWork,
    referral_id: str,
    caller: Caller,
    accessed: AccessedData,
    attachment_id: str | None = None,
    now: datetime | None = None,
) -> None:
    """Stage the record and its event in ``uow``'s open transaction; the caller commits."""
    event = ReferralAccessed(
        referral_id=referral_id,
        access_id=new_id(),
        actor=caller.actor,
        client_id=caller.client_id,
        roles=sorted(caller.roles),
        accessed=accessed,
        attachment_id=attachment_id,
        accessed_at=now or datetime.now(UTC),
    )
    envelope = wrap(event, source=SOURCE, correlation_id=uow.correlation_id)
    uow.referrals.add_access(
        {
            "id": event.access_id,
            "referral_id": referral_id,
            "organisation": caller.organisation,
            "practitioner": caller.practitioner,
            "client_id": caller.client_id,
            "roles": ",".join(event.roles),
            "accessed": accessed.value,
            "attachment_id": attachment_id,
            "event_id": envelope.id,
            "at": event.accessed_at,
        }
    )
    uow.add_to_outbox(envelope, [REFERRAL_ACCESS])
