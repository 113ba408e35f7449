"""Use cases of the referrals service. Each takes a unit of work and commits it once, and
returns domain objects."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from rx_contracts import (
    AccessedData,
    ClockKind,
    CohortFlags,
    Envelope,
    Payload,
    Priority,
    ReferralRouted,
    ReferralStatus,
    ReferralUnroutable,
    ServiceType,
    SlaBreached,
    new_id,
)

from ..adapters.repository import View, WorklistQuery
from ..domain import attachments
from ..domain.attachments import Attachment
from ..domain.caller import Caller, Party, Role
from ..domain.errors import IllegalTransition, InvalidRequest, NotPermitted, ReferralNotFound
from ..domain.identifiers import Identifier
from ..domain.lifecycle import TERMINAL, Action
from ..domain.model import HistoryEntry, Patient, Referral, ReferrerIdentifier
from ..domain.routing_attempt import answers_current_attempt, awaited_decision
from ..domain.sharing import ConsentGiven
from .access import record_access
from .unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class SubmitReferral:
    referrer_org: str
    patient: Patient
    service_type: ServiceType
    priority: Priority
    cohort: CohortFlags
    reason_code: str | None = None
    reason_text: str | None = None
    clinical_summary: str | None = None
    consent: ConsentGiven | None = None
    identifier: ReferrerIdentifier | None = None


def submit_referral(
    cmd: SubmitReferral, caller: Caller, uow: UnitOfWork, now: datetime | None = None
) -> Referral:
    """Store a new referral and stage its ReferralSubmitted event, in one transaction."""
    with uow:
        referral = Referral.submit(
            referral_id=new_id(),
            caller=caller,
            referrer_org=cmd.referrer_org,
            patient=cmd.patient,
            service_type=cmd.service_type,
            priority=cmd.priority,
            cohort=cmd.cohort,
            reason_code=cmd.reason_code,
            reason_text=cmd.reason_text,
            clinical_summary=cmd.clinical_summary,
            now=now or uow.now(),
            consent=cmd.consent,
            identifier=cmd.identifier,
        )
        uow.referrals.add(referral)
        uow.commit()
    return referral


ACTIONS: dict[Action, Callable[..., object]] = {
    Action.AMEND: Referral.amend,
    Action.CANCEL: Referral.cancel,
    Action.ACCEPT: Referral.accept,
    Action.REJECT: Referral.reject,
    Action.REDIRECT: Referral.redirect,
    Action.START: Referral.start,
    Action.COMPLETE: Referral.complete,
    Action.REROUTE: Referral.reroute,
    Action.RECORD_NHS_NUMBER: Referral.record_nhs_number,
    Action.REQUEST_INFO: Referral.request_info,
    Action.PROVIDE_INFO: Referral.provide_info,
    Action.MESSAGE: Referral.message,
    Action.REPORT_PROGRESS: Referral.report_progress,
    Action.FAIL: Referral.fail,
}
"""The aggregate's method for each lifecycle action; ``details`` are its keyword arguments."""


def transition(
    referral_id: str,
    action: Action,
    caller: Caller,
    if_match: int,
    uow: UnitOfWork,
    now: datetime | None = None,
    **details: Any,
) -> Referral:
    """Apply one lifecycle action (accept, reject, …) as ``caller``, if ``if_match`` is the
    current version. The row is locked for the transaction, so two concurrent actions on one
    referral cannot both pass the version check."""
    with uow:
        referral = uow.referrals.get(referral_id, for_update=True)
        if referral is None or not referral.visible_to(caller):
            raise ReferralNotFound(f"no referral {referral_id}")
        if details.get("attachment_id") is not None:
            _check_attachment(uow, referral_id, details["attachment_id"])
        ACTIONS[action](referral, caller, if_match, now or uow.now(), **details)
        uow.commit()
    return referral


def _check_attachment(uow: UnitOfWork, referral_id: str, attachment_id: str) -> None:
    """A message or an answer may point only at a document already attached to its referral
    (``POST /referrals/{id}/attachments`` first)."""
    found = uow.referrals.attachment(attachment_id)
    if found is None or found.referral_id != referral_id:
        raise InvalidRequest(
            "attachment_id",
            "unknown_attachment",
            f"no attachment {attachment_id} on referral {referral_id}; upload it first",
        )


def _visible(
    referral_id: str, caller: Caller, uow: UnitOfWork, for_update: bool = False
) -> Referral:
    """Inside ``uow``: a referral the caller may see; one it may not see is not found."""
    referral = uow.referrals.get(referral_id, for_update=for_update)
    if referral is None or not referral.visible_to(caller):
        raise ReferralNotFound(f"no referral {referral_id}")
    return referral


def get_referral(referral_id: str, caller: Caller, uow: UnitOfWork) -> Referral:
    """A referral the caller may see, its patient details included: the read is recorded
    (who, when) and published as an access event with it."""
    with uow:
        referral = _visible(referral_id, caller, uow)
        record_access(uow, referral_id, caller, AccessedData.REFERRAL)
        uow.commit()
    return referral


def get_history(referral_id: str, caller: Caller, uow: UnitOfWork) -> list[HistoryEntry]:
    """Who did what to a referral the caller may see, with what was said at each step."""
    return read_history(referral_id, caller, uow, lambda history: history)


def read_history(
    referral_id: str, caller: Caller, uow: UnitOfWork, show: Callable[[list[HistoryEntry]], T]
) -> T:
    """What ``show`` makes of a referral's history, if the caller may see the referral. The
    steps' text (questions, answers, messages, interim updates, reasons) is what referrer and
    provider said about the patient, so the read is recorded as one of its communications and
    published as an access event with it; nothing is recorded if ``show`` raises (nothing
    shown: an unknown Communication, say)."""
    with uow:
        _visible(referral_id, caller, uow)
        shown = show(uow.referrals.history(referral_id))
        record_access(uow, referral_id, caller, AccessedData.COMMUNICATIONS)
        uow.commit()
    return shown


def history_for_change(referral_id: str, caller: Caller, uow: UnitOfWork) -> list[HistoryEntry]:
    """A referral's history, for a change to it (the change itself is the record): none of it
    is shown to the caller."""
    with uow:
        _visible(referral_id, caller, uow)
        return uow.referrals.history(referral_id)


def worklist(query: WorklistQuery, caller: Caller, uow: UnitOfWork) -> list[Referral]:
    """Referrals assigned to or sent by the caller's organisation; every referral for ops."""
    if query.view is View.ALL and Role.OPS not in caller.roles:
        raise NotPermitted("only ops may list every referral", [])
    with uow:
        return uow.referrals.worklist(query)


def apply_routing_decision(
    envelope: Envelope, uow: UnitOfWork, payload: Payload | None = None
) -> None:
    """Record what routing decided (from routing.decisions.v1), if it answers the referral's
    current routing attempt; a late decision for an attempt since replaced is logged and
    ignored. Other event types on that topic are not ours to act on and are ignored.
    ``payload``: the envelope's, if the caller validated it already."""
    if payload is None:
        payload = envelope.payload()
    if not isinstance(payload, ReferralRouted | ReferralUnroutable):
        return
    with uow:
        referral = uow.referrals.get(payload.referral_id, for_update=True)
        if referral is None:
            raise ReferralNotFound(f"routing decision for unknown referral {payload.referral_id}")
        if referral.status is not ReferralStatus.SUBMITTED:
            # Cancelled or re-routed while routing decided: the decision is stale, not poison.
            log.info(
                "ignoring %s for %s referral %s", envelope.type, referral.status.value, referral.id
            )
            return
        awaited = awaited_decision(uow.referrals.history(referral.id))
        if not answers_current_attempt(payload.sequence, awaited):
            # Re-routed while routing decided: the decision answers the attempt ops replaced.
            log.warning(
                "ignoring stale %s %s for referral %s: it is decision %s, awaiting decision %s",
                envelope.type,
                envelope.id,
                referral.id,
                payload.sequence,
                awaited,
            )
            return
        if isinstance(payload, ReferralRouted):
            referral.record_routing(
                payload.assigned_org,
                payload.provider_type,
                payload.routed_at,
                envelope.id,
                payload.sequence,
            )
        else:
            referral.record_unroutable(payload.decided_at, envelope.id, payload.sequence)
        uow.commit()


def apply_sla_breach(
    envelope: Envelope,
    uow: UnitOfWork,
    now: datetime | None = None,
    payload: Payload | None = None,
) -> None:
    """Re-route, as the platform, a referral whose acceptance clock ran out when its policy
    asks for that (from routing.sla.v1). A no-op when the organisation accepted in time or
    the referral has moved on; other clock events are not ours to act on. ``payload``: the
    envelope's, if the caller validated it already."""
    if payload is None:
        payload = envelope.payload()
    if not (
        isinstance(payload, SlaBreached)
        and payload.kind is ClockKind.ACCEPTANCE
        and payload.auto_reroute
        and payload.assigned_org
    ):
        return
    with uow:
        referral = uow.referrals.get(payload.referral_id, for_update=True)
        if referral is None:
            raise ReferralNotFound(f"SLA breach for unknown referral {payload.referral_id}")
        if referral.release_on_timeout(payload.assigned_org, now or datetime.now(UTC)):
            uow.commit()
        else:
            log.info(
                "acceptance breach for %s: %s no longer holds it unaccepted (%s)",
                referral.id,
                payload.assigned_org,
                referral.status.value,
            )


def add_attachment(
    referral_id: str,
    caller: Caller,
    content_type: str,
    filename: str,
    content: bytes,
    uow: UnitOfWork,
    identifier: Identifier | None = None,
) -> Attachment:
    """Attach a document to a referral the caller takes part in (referrer or assigned
    organisation), while the referral is still open; ``identifier`` is the uploader's own for
    it, kept with it."""
    media_type = attachments.check(content_type, filename, content)
    with uow:
        referral = uow.referrals.get(referral_id, for_update=True)
        if referral is None or not referral.visible_to(caller):
            raise ReferralNotFound(f"no referral {referral_id}")
        if not referral.parties(caller) & {Party.REFERRER, Party.ASSIGNED}:
            raise NotPermitted(
                "only the referrer or the assigned organisation may attach documents", []
            )
        if referral.status in TERMINAL:
            raise IllegalTransition(f"cannot attach to a {referral.status.value} referral", [])
        attachment = Attachment(
            id=new_id(),
            referral_id=referral_id,
            filename=filename,
            content_type=media_type,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            content=content,
            uploaded_by=caller.organisation,
            created_at=datetime.now(UTC),
            identifier=identifier,
        )
        uow.referrals.add_attachment(attachment)
        uow.commit()
    return attachment


def uploaded_with_identifier(
    referral_id: str, identifier: Identifier, caller: Caller, uow: UnitOfWork
) -> list[Attachment]:
    """Inside an upload's transaction: the documents of the referral that the caller's
    organisation uploaded with that identifier, at most two (two already mean "not one"). The
    referral's row stays locked until the transaction ends (PostgreSQL; on SQLite every writing
    transaction holds the database), so a concurrent upload naming it waits and then finds what
    this one stored. Any returned is recorded as read, as the list is."""
    with uow:
        _visible(referral_id, caller, uow, for_update=True)
        found = uow.referrals.attachments_with_identifier(
            identifier, referral_id, caller.organisation
        )[:2]
        if found:
            record_access(uow, referral_id, caller, AccessedData.ATTACHMENT_LIST)
        uow.commit()
    return found


def attachments_with_identifier(
    identifier: Identifier, caller: Caller, uow: UnitOfWork
) -> list[Attachment]:
    """The documents with that uploader's identifier whose referral the caller may see, oldest
    first; each referral's documents read are recorded as its list is."""
    with uow:
        found = uow.referrals.attachments_with_identifier(identifier)
        seen: dict[str, bool] = {}
        for rid in dict.fromkeys(a.referral_id for a in found):
            referral = uow.referrals.get(rid)
            seen[rid] = referral is not None and referral.visible_to(caller)
            if seen[rid]:
                record_access(uow, rid, caller, AccessedData.ATTACHMENT_LIST)
        uow.commit()
    return [a for a in found if seen[a.referral_id]]


def list_attachments(referral_id: str, caller: Caller, uow: UnitOfWork) -> list[Attachment]:
    """The attachments of a referral the caller may see; the read is recorded."""
    with uow:
        _visible(referral_id, caller, uow)
        found = uow.referrals.attachments(referral_id)
        record_access(uow, referral_id, caller, AccessedData.ATTACHMENT_LIST)
        uow.commit()
    return found


def get_attachment(
    referral_id: str, attachment_id: str, caller: Caller, uow: UnitOfWork
) -> Attachment:
    """One attachment of a referral the caller may see; the read is recorded."""
    with uow:
        _visible(referral_id, caller, uow)
        attachment = uow.referrals.attachment(attachment_id)
        if attachment is None or attachment.referral_id != referral_id:
            raise ReferralNotFound(f"no attachment {attachment_id} on referral {referral_id}")
        record_access(uow, referral_id, caller, AccessedData.ATTACHMENT, attachment_id)
        uow.commit()
    return attachment


def find_attachment(
    attachment_id: str, caller: Caller, uow: UnitOfWork, accessed: AccessedData
) -> Attachment:
    """An attachment known by its id alone (FHIR's DocumentReference and Binary), if the
    caller may see its referral: recorded as the JSON API records ``accessed``, its
    description (``attachment-list``, as a list is) or its content (``attachment``). One the
    caller may not see is not found, without naming its referral."""
    with uow:
        attachment = uow.referrals.attachment(attachment_id)
        referral = uow.referrals.get(attachment.referral_id) if attachment else None
        if attachment is None or referral is None or not referral.visible_to(caller):
            raise ReferralNotFound(f"no attachment {attachment_id}")
        content = accessed is AccessedData.ATTACHMENT  # the record names what it read
        record_access(
            uow, attachment.referral_id, caller, accessed, attachment_id if content else None
        )
        uow.commit()
    return attachment
