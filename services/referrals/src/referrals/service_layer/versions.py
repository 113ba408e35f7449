"""Reading referrals at any version, their assignments, and searching both: what the FHIR
interface reads (ServiceRequest, Task, Patient, vread, search). Every read that returns patient
data is recorded as an access, as on the JSON API."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Generic, TypeVar

from rx_contracts import AccessedData, ReferralStatus

from ..adapters.ledger import AssignmentQuery, ReferralQuery, Visibility, state_of, to_referral
from ..adapters.repository import _utc
from ..adapters.tables import AssignmentRow, ReferralRow
from ..domain.assignments import AssignmentState
from ..domain.caller import Caller, Role
from ..domain.errors import ReferralNotFound
from ..domain.identifiers import Identifier
from ..domain.model import Referral
from .access import record_access
from .unit_of_work import UnitOfWork


@dataclass(frozen=True)
class ReferralVersion:
    """A referral at one version, and when that version was written."""

    referral: Referral
    updated_at: datetime
    cancel_reason: str | None = None
    """Why it ended, in words, when it is cancelled or failed."""
    end_code: str | None = None
    """Why it ended, coded (cancellation or failure reason), when it is cancelled or failed."""
    documents: tuple[str, ...] = ()
    """The ids of the referral's attachments, oldest first. They are the referral's, not a
    version's: attaching one makes no new version, and every version names them all."""


@dataclass(frozen=True)
class AssignmentVersion:
    """An assignment at one version of its referral, with the referral at that version."""

    id: str
    organisation: str
    provider_type: str
    opened_at: datetime
    state: AssignmentState
    version: int
    updated_at: datetime
    referral: Referral


class VersionNotFound(ReferralNotFound):
    """The resource exists but not at that version (or that version was not kept)."""


def visibility(caller: Caller) -> Visibility:
    return Visibility(caller.organisation, everything=Role.OPS in caller.roles)


def read_referral(
    referral_id: str, caller: Caller, uow: UnitOfWork, version: int | None = None
) -> ReferralVersion:
    """The referral now, or at ``version``, if the caller may see it now; the read is
    recorded."""
    with uow:
        [found] = _with_documents(uow, [_referral_at(referral_id, caller, uow, version)])
        record_access(uow, referral_id, caller, AccessedData.REFERRAL)
        uow.commit()
    return found


def read_assignment(
    assignment_id: str, caller: Caller, uow: UnitOfWork, version: int | None = None
) -> AssignmentVersion:
    """An assignment now, or at ``version``, if the caller may see its referral now; the read
    is recorded (it names the patient)."""
    with uow:
        row = uow.ledger.assignment(assignment_id)
        current = uow.referrals.get(row.referral_id) if row else None
        if row is None or current is None or not current.visible_to(caller):
            raise ReferralNotFound(f"no Task {assignment_id}")
        found = _assignment_at(row, current, uow, version)
        record_access(uow, row.referral_id, caller, AccessedData.REFERRAL)
        uow.commit()
    return found


def current_referral(referral_id: str, caller: Caller, uow: UnitOfWork) -> Referral:
    """A referral as it is now, for a change to it (the change itself is the record)."""
    with uow:
        found = uow.referrals.get(referral_id)
        if found is None or not found.visible_to(caller):
            raise ReferralNotFound(f"no ServiceRequest {referral_id}")
        return found


def current_assignment(assignment_id: str, caller: Caller, uow: UnitOfWork) -> AssignmentVersion:
    """An assignment as it is now, for a change to it (the change itself is the record)."""
    with uow:
        row = uow.ledger.assignment(assignment_id)
        current = uow.referrals.get(row.referral_id) if row else None
        if row is None or current is None or not current.visible_to(caller):
            raise ReferralNotFound(f"no Task {assignment_id}")
        return _assignment_at(row, current, uow, None)


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    more: bool
    """Whether more match after these."""


def search_referrals(
    query: ReferralQuery, caller: Caller, uow: UnitOfWork
) -> Page[ReferralVersion]:
    """A page of the referrals the caller may see that match ``query``; each one returned is
    recorded as read."""
    query = replace(query, visibility=visibility(caller))
    with uow:
        found = uow.ledger.search_referrals(query)
        rows = found[: query.limit]
        for row in rows:
            record_access(uow, row.id, caller, AccessedData.REFERRAL)
        page = _with_documents(uow, [_version_of(uow, row) for row in rows])
        uow.commit()
    return Page(page, len(found) > query.limit)


def referrals_with_identifier(
    system: str, value: str, caller: Caller, uow: UnitOfWork
) -> list[ReferralVersion]:
    """Inside a create's transaction: the caller's own referrals (it is their referrer) with
    that referrer's identifier, at most two (two already mean "not one"); the identifier stays
    locked until the transaction ends, so a concurrent create naming it waits and then finds
    what this one stored. Any returned is recorded as read."""
    with uow:
        uow.ledger.lock_identifier(system, value)
        query = ReferralQuery(
            visibility=visibility(caller),
            requesters=(caller.organisation,),
            identifier=Identifier(system, value),
            limit=2,
        )
        page = search_referrals(query, caller, uow)
        uow.commit()
    return page.items


def search_assignments(
    query: AssignmentQuery, caller: Caller, uow: UnitOfWork, include_referrals: bool = False
) -> tuple[Page[AssignmentVersion], list[ReferralVersion]]:
    """Assignments (at their latest version) whose referral the caller may see; with
    ``include_referrals`` also those referrals as they are now. Every referral whose data is
    returned is recorded as read, once."""
    query = replace(query, visibility=visibility(caller))
    with uow:
        matched = uow.ledger.search_assignments(query)
        rows = matched[: query.limit]
        referrals: dict[str, Referral] = {}
        for row in rows:
            if row.referral_id not in referrals:
                referral = uow.referrals.get(row.referral_id)
                assert referral is not None, "an assignment's referral exists"
                referrals[row.referral_id] = referral
                record_access(uow, row.referral_id, caller, AccessedData.REFERRAL)
        found = [_assignment_at(row, referrals[row.referral_id], uow, None) for row in rows]
        included = (
            _with_documents(uow, [_current(uow, rid) for rid in referrals])
            if include_referrals
            else []
        )
        uow.commit()
    return Page(found, len(matched) > query.limit), included


def documents_of(uow: UnitOfWork, referral_id: str) -> tuple[str, ...]:
    """Inside ``uow``: the ids of the referral's attachments (for a write's answer)."""
    return tuple(uow.referrals.attachment_ids([referral_id]).get(referral_id, ()))


def _with_documents(uow: UnitOfWork, found: list[ReferralVersion]) -> list[ReferralVersion]:
    """``found`` with each referral's attachment ids, read in one query."""
    ids = uow.referrals.attachment_ids([f.referral.id for f in found])
    return [replace(f, documents=tuple(ids.get(f.referral.id, ()))) for f in found]


def _referral_at(
    referral_id: str, caller: Caller, uow: UnitOfWork, version: int | None
) -> ReferralVersion:
    current = uow.referrals.get(referral_id)
    if current is None or not current.visible_to(caller):
        raise ReferralNotFound(f"no ServiceRequest {referral_id}")
    if version is None or version == current.version:
        return _current(uow, referral_id)
    kept = uow.ledger.referral_at(referral_id, version) if version < current.version else None
    if kept is None:
        raise VersionNotFound(f"ServiceRequest {referral_id} has no version {version}")
    return ReferralVersion(*kept)


def _current(uow: UnitOfWork, referral_id: str) -> ReferralVersion:
    """The referral as ``uow.referrals.get`` loaded it just now."""
    referral = uow.referrals.seen[referral_id]
    return _version_with(uow, referral, _utc(uow.referrals.updated_at(referral_id)))


def _version_of(uow: UnitOfWork, row: ReferralRow) -> ReferralVersion:
    return _version_with(uow, *_with_updated(row))


def _version_with(uow: UnitOfWork, referral: Referral, updated_at: datetime) -> ReferralVersion:
    ending = _ENDING_ACTIONS.get(referral.status)
    if ending is None:
        return ReferralVersion(referral, updated_at)
    steps = uow.referrals.history(referral.id)
    last = next((s for s in reversed(steps) if s.action == ending), None)
    if last is None:
        return ReferralVersion(referral, updated_at)
    return ReferralVersion(referral, updated_at, last.note, last.reason_code)


_ENDING_ACTIONS = {ReferralStatus.CANCELLED: "cancel", ReferralStatus.FAILED: "fail"}
"""The step whose reason a ServiceRequest shows, by the end the referral came to."""


def _with_updated(row: ReferralRow) -> tuple[Referral, datetime]:
    return to_referral(row), _utc(row.updated_at)


def _assignment_at(
    row: AssignmentRow, current: Referral, uow: UnitOfWork, version: int | None
) -> AssignmentVersion:
    """The assignment at ``version`` (its latest when None), with its referral then."""
    version = row.version if version is None else version
    if version == row.version:
        state, updated_at = state_of(row), row.updated_at
    else:
        kept = uow.ledger.assignment_at(row.id, version)
        if kept is None:
            raise VersionNotFound(f"Task {row.id} has no version {version}")
        state, updated_at = state_of(kept), kept.updated_at
    if version == current.version:
        referral = current
    else:
        at = uow.ledger.referral_at(row.referral_id, version)
        referral = at[0] if at else current
    return AssignmentVersion(
        id=row.id,
        organisation=row.organisation,
        provider_type=row.provider_type,
        opened_at=_utc(row.opened_at),
        state=state,
        version=version,
        updated_at=_utc(updated_at),
        referral=referral,
    )
