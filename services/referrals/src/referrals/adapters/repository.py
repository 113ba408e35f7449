"""Mapping the Referral aggregate, its history and its attachments to and from their rows;
worklist queries."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import SimpleNamespace
from typing import Any

from rx_contracts import (
    CohortFlags,
    NhsNumberVerification,
    Outcome,
    Priority,
    ProviderType,
    ReferralStatus,
    ServiceType,
    SharingBasis,
)
from rx_messaging import fastsql
from sqlalchemy import Table, and_, bindparam, or_, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from ..domain.attachments import Attachment
from ..domain.identifiers import Identifier
from ..domain.model import HistoryEntry, Referral, ReferrerIdentifier
from ..domain.patient import LocalIdentifier, Patient
from ..domain.sharing import Consent
from .tables import AccessRecordRow, AttachmentRow, ReferralRow, TransitionRow
from .transaction import Transaction

REFERRAL: Table = ReferralRow.__table__  # type: ignore[attr-defined]
TRANSITION: Table = TransitionRow.__table__  # type: ignore[attr-defined]
ACCESS: Table = AccessRecordRow.__table__  # type: ignore[attr-defined]
ATTACHMENT: Table = AttachmentRow.__table__  # type: ignore[attr-defined]
_COLUMNS = tuple(column.key for column in REFERRAL.columns)
_BY_ID = core_select(*REFERRAL.columns).where(REFERRAL.c.id == bindparam("referral_id"))
_BY_ID_LOCKED = _BY_ID.with_for_update()
_HISTORY = (
    core_select(
        TRANSITION.c.sequence,
        TRANSITION.c.action,
        TRANSITION.c.to_status,
        TRANSITION.c.actor_org,
        TRANSITION.c.actor_practitioner,
        TRANSITION.c.reason_code,
        TRANSITION.c.note,
        TRANSITION.c.at,
        TRANSITION.c.event_id,
        TRANSITION.c.attachment_id,
    )
    .where(TRANSITION.c.referral_id == bindparam("referral_id"))
    .order_by(TRANSITION.c.sequence)
)

_ATTACHMENT_IDS = (
    core_select(ATTACHMENT.c.referral_id, ATTACHMENT.c.id)
    .where(ATTACHMENT.c.referral_id == bindparam("referral_id"))
    .order_by(ATTACHMENT.c.created_at, ATTACHMENT.c.id)
)


class View(StrEnum):
    """Which worklist: referrals assigned to my organisation, sent by it, or (ops) all."""

    ASSIGNED = "assigned"
    SENT = "sent"
    ALL = "all"


@dataclass(frozen=True)
class WorklistQuery:
    view: View
    organisation: str
    statuses: tuple[ReferralStatus, ...] = ()
    priorities: tuple[Priority, ...] = ()
    service_types: tuple[ServiceType, ...] = ()
    due_before: datetime | None = None
    after: tuple[datetime, str] | None = None  # (due_at, id) of the last item already seen
    limit: int = 50


class ReferralRepository:
    def __init__(self, session: Session | Transaction) -> None:
        self.session = session
        self.seen: dict[str, Referral] = {}
        self._new: set[str] = set()
        self._rows: dict[str, dict[str, Any]] = {}
        """Each referral's row as loaded (column → value): what saving compares with, and the
        ledger's copy of the version being replaced."""

    def add(self, referral: Referral) -> None:
        self.seen[referral.id] = referral
        self._new.add(referral.id)

    def get(self, referral_id: str, *, for_update: bool = False) -> Referral | None:
        """Load a referral; ``for_update`` locks its row (PostgreSQL) so concurrent
        transitions serialise and the version check stays honest."""
        # Straight to the driver (rx_messaging.fastsql), with a statement built once: every
        # transition and every read loads its referral, and SQLAlchemy's ORM load (identity
        # map, instance state, statement cache key) costs several times the query itself.
        # Nothing here is then an ORM object: saving writes the changed columns itself.
        query = _BY_ID_LOCKED if for_update else _BY_ID
        found = fastsql.fetch_rows(self.session.connection(), query, {"referral_id": referral_id})
        if not found:
            return None
        row = dict(zip(_COLUMNS, found[0], strict=True))
        self._rows[referral_id] = row
        referral = _to_domain(SimpleNamespace(**row))
        self.seen[referral.id] = referral
        return referral

    def loaded(self, referral_id: str) -> Mapping[str, Any]:
        """The referral's row as :meth:`get` loaded it in this unit of work (column → value,
        as SQLAlchemy would give them): the version a change is about to replace."""
        return self._rows[referral_id]

    def save(self, referral: Referral, now: datetime) -> None:
        """Write the aggregate's current state, stamped ``now`` (called by the unit of work on
        commit)."""
        if referral.id in self._new:
            # New: straight to the driver (rx_messaging.fastsql), no load, no ORM bookkeeping
            # and no Core statement set-up: the hot path of POST /referrals.
            values = {"id": referral.id, **_to_row_fields(referral), "updated_at": now}
            fastsql.execute(
                self.session.connection(), fastsql.insert_into(REFERRAL, tuple(values)), values
            )
            self._new.discard(referral.id)
            return
        # Loaded by get(): only the columns that changed, straight to the driver as well.
        before = self._rows[referral.id]
        changed = {k: v for k, v in _to_row_fields(referral).items() if before.get(k) != v}
        changed["updated_at"] = now
        statement = _update_of(tuple(changed))
        fastsql.execute(self.session.connection(), statement, {"key": referral.id, **changed})
        self._rows[referral.id] = {**before, **changed}

    def add_transitions(self, rows: list[dict[str, object]]) -> None:
        """Append history lines (straight to the driver: they are never updated)."""
        if rows:
            conn = self.session.connection()
            fastsql.execute_many(conn, fastsql.insert_into(TRANSITION, tuple(rows[0])), rows)

    def updated_at(self, referral_id: str) -> datetime:
        """When the referral loaded by :meth:`get` was last written."""
        updated: datetime = self._rows[referral_id]["updated_at"]
        return updated

    def add_access(self, values: dict[str, Any]) -> None:
        """Record a read of a referral's patient data (``referral_access``; never updated)."""
        conn = self.session.connection()
        fastsql.execute(conn, fastsql.insert_into(ACCESS, tuple(values)), values)

    def history(self, referral_id: str) -> list[HistoryEntry]:
        """The referral's steps in sequence order (on the driver, as :meth:`get`: the
        consumer reads it for every routing decision)."""
        rows = fastsql.fetch_rows(self.session.connection(), _HISTORY, {"referral_id": referral_id})
        return [
            HistoryEntry(
                sequence=sequence,
                action=action,
                to_status=ReferralStatus(to_status),
                actor_org=actor_org,
                actor_practitioner=actor_practitioner,
                reason_code=reason_code,
                note=note,
                at=at,
                event_id=event_id,
                attachment_id=attachment_id,
            )
            for (
                sequence,
                action,
                to_status,
                actor_org,
                actor_practitioner,
                reason_code,
                note,
                at,
                event_id,
                attachment_id,
            ) in rows
        ]

    def add_attachment(self, attachment: Attachment) -> None:
        """Stage a new attachment; it is written with the unit of work's commit."""
        fields = {k: v for k, v in vars(attachment).items() if k != "identifier"}
        given = attachment.identifier
        self.session.add(
            AttachmentRow(
                **fields,
                identifier_system=given.system if given else None,
                identifier_value=given.value if given else None,
            )
        )

    def attachment(self, attachment_id: str) -> Attachment | None:
        row = self.session.get(AttachmentRow, attachment_id)
        return _attachment(row) if row is not None else None

    def attachments(self, referral_id: str) -> list[Attachment]:
        """Attachment metadata (the content is loaded too but not returned by the API)."""
        query = select(AttachmentRow).where(AttachmentRow.referral_id == referral_id)
        return [
            _attachment(row)
            for row in self.session.exec(query.order_by(col(AttachmentRow.created_at)))
        ]

    def attachments_with_identifier(
        self, identifier: Identifier, referral_id: str | None = None, uploader: str | None = None
    ) -> list[Attachment]:
        """The attachments with that uploader's identifier (of one referral, by one uploader,
        if asked), oldest first."""
        query = select(AttachmentRow).where(
            col(AttachmentRow.identifier_value) == identifier.value,
            col(AttachmentRow.identifier_system) == identifier.system,
        )
        if referral_id is not None:
            query = query.where(col(AttachmentRow.referral_id) == referral_id)
        if uploader is not None:
            query = query.where(col(AttachmentRow.uploaded_by) == uploader)
        query = query.order_by(col(AttachmentRow.created_at), col(AttachmentRow.id))
        return [_attachment(row) for row in self.session.exec(query)]

    def attachment_ids(self, referral_ids: list[str]) -> dict[str, list[str]]:
        """The ids of each referral's attachments, oldest first, in one query that leaves the
        content unread (a ServiceRequest names its documents)."""
        if not referral_ids:
            return {}
        conn = self.session.connection()
        if len(referral_ids) == 1:  # a read: the prepared statement, as the hot reads use
            rows = fastsql.fetch_rows(conn, _ATTACHMENT_IDS, {"referral_id": referral_ids[0]})
        else:
            query = (
                core_select(ATTACHMENT.c.referral_id, ATTACHMENT.c.id)
                .where(ATTACHMENT.c.referral_id.in_(referral_ids))
                .order_by(ATTACHMENT.c.created_at, ATTACHMENT.c.id)
            )
            rows = [tuple(row) for row in conn.execute(query)]
        found: dict[str, list[str]] = {}
        for referral_id, attachment_id in rows:
            found.setdefault(referral_id, []).append(attachment_id)
        return found

    def worklist(self, q: WorklistQuery) -> list[Referral]:
        """Matching referrals sorted by due time (then id), after the cursor, up to limit."""
        query = select(ReferralRow)
        if q.view is View.ASSIGNED:
            query = query.where(ReferralRow.assigned_org == q.organisation)
        elif q.view is View.SENT:
            query = query.where(ReferralRow.referrer_org == q.organisation)
        if q.statuses:
            query = query.where(col(ReferralRow.status).in_([s.value for s in q.statuses]))
        if q.priorities:
            query = query.where(col(ReferralRow.priority).in_([p.value for p in q.priorities]))
        if q.service_types:
            query = query.where(
                col(ReferralRow.service_type).in_([s.value for s in q.service_types])
            )
        if q.due_before is not None:
            query = query.where(col(ReferralRow.due_at) < _utc(q.due_before))
        if q.after is not None:
            due, rid = _utc(q.after[0]), q.after[1]
            query = query.where(
                or_(
                    col(ReferralRow.due_at) > due,
                    and_(col(ReferralRow.due_at) == due, col(ReferralRow.id) > rid),
                )
            )
        query = query.order_by(col(ReferralRow.due_at), col(ReferralRow.id)).limit(q.limit)
        return [_to_domain(row) for row in self.session.exec(query)]


@functools.cache
def _update_of(columns: tuple[str, ...]) -> Any:
    """``UPDATE referral SET columns… WHERE id = :key``, one statement object per column set
    (so its compiled form is cached)."""
    values: dict[str, Any] = {name: bindparam(name) for name in columns}
    return update(REFERRAL).where(REFERRAL.c.id == bindparam("key")).values(values)


def _attachment(row: AttachmentRow) -> Attachment:
    return Attachment(
        id=row.id,
        referral_id=row.referral_id,
        filename=row.filename,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        content=row.content,
        uploaded_by=row.uploaded_by,
        created_at=row.created_at,
        identifier=_identifier_of(row.identifier_system, row.identifier_value),
    )


def _utc(value: datetime) -> datetime:
    """Every stored time is UTC; a time given without a zone is taken as UTC."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _to_row_fields(r: Referral) -> dict[str, object]:
    return {
        "status": r.status.value,
        "version": r.version,
        "sequence": r.sequence,
        "referrer_org": r.referrer_org,
        "practitioner": r.practitioner,
        "patient_nhs_number": r.patient.nhs_number,
        "patient_name": r.patient.name,
        "patient_birth_date": r.patient.birth_date,
        "patient_postcode": r.patient.postcode,
        **_identity_and_consent_fields(r),
        "service_type": r.service_type.value,
        "priority": r.priority.value,
        "care_home_resident": r.cohort.care_home_resident,
        "frailty": r.cohort.frailty,
        "end_of_life": r.cohort.end_of_life,
        "reason_code": r.reason_code,
        "reason_text": r.reason_text,
        "clinical_summary": r.clinical_summary,
        "assigned_org": r.assigned_org,
        "assigned_provider_type": r.assigned_provider_type.value
        if r.assigned_provider_type
        else None,
        "outcome": r.outcome.value if r.outcome else None,
        "rejected_by": list(r.rejected_by),
        "referrer_identifier_system": r.identifier.system if r.identifier else None,
        "referrer_identifier_value": r.identifier.value if r.identifier else None,
        "created_at": r.created_at,
        "due_at": r.due_at,
    }


def _to_domain(row: ReferralRow | SimpleNamespace) -> Referral:
    return Referral(
        id=row.id,
        referrer_org=row.referrer_org,
        practitioner=row.practitioner,
        patient=_patient(row),
        consent=_consent(row),
        service_type=ServiceType(row.service_type),
        priority=Priority(row.priority),
        cohort=CohortFlags(
            care_home_resident=row.care_home_resident,
            frailty=row.frailty,
            end_of_life=row.end_of_life,
        ),
        reason_code=row.reason_code,
        reason_text=row.reason_text,
        clinical_summary=row.clinical_summary,
        created_at=_utc(row.created_at),
        due_at=_utc(row.due_at),
        status=ReferralStatus(row.status),
        version=row.version,
        sequence=row.sequence,
        assigned_org=row.assigned_org,
        assigned_provider_type=ProviderType(row.assigned_provider_type)
        if row.assigned_provider_type
        else None,
        outcome=Outcome(row.outcome) if row.outcome else None,
        rejected_by=list(row.rejected_by or []),
        identifier=_identifier(row),
    )


def _identifier(row: Any) -> ReferrerIdentifier | None:
    return _identifier_of(row.referrer_identifier_system, row.referrer_identifier_value)


def _identifier_of(system: str | None, value: str | None) -> Identifier | None:
    return Identifier(system, value) if system is not None and value is not None else None


def _identity_and_consent_fields(r: Referral) -> dict[str, object]:
    p, c = r.patient, r.consent
    local = p.local_identifier
    return {
        "patient_nhs_number_verification": (
            p.nhs_number_verification or NhsNumberVerification.ABSENT
        ).value,
        "patient_local_id": local.value if local else None,
        "patient_local_id_org": local.organisation if local else None,
        "national_data_opt_out": p.national_data_opt_out,
        "consent_basis": c.basis.value if c else None,
        "consent_recorded_by_org": c.recorded_by_org if c else None,
        "consent_recorded_by_practitioner": c.recorded_by_practitioner if c else None,
        "consent_recorded_at": c.recorded_at if c else None,
    }


def _patient(row: Any) -> Patient:
    local = (
        LocalIdentifier(row.patient_local_id, row.patient_local_id_org)
        if row.patient_local_id and row.patient_local_id_org
        else None
    )
    return Patient(
        row.patient_postcode,
        row.patient_nhs_number,
        row.patient_name,
        row.patient_birth_date,
        NhsNumberVerification(row.patient_nhs_number_verification),
        local,
        row.national_data_opt_out,
    )


def _consent(row: Any) -> Consent | None:
    if row.consent_basis is None or row.consent_recorded_at is None:
        return None
    return Consent(
        SharingBasis(row.consent_basis),
        row.consent_recorded_by_org or row.referrer_org,
        row.consent_recorded_by_practitioner,
        _utc(row.consent_recorded_at),
    )
