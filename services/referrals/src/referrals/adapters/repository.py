"""Mapping the Referral aggregate, its history and its attachments to and from their rows;
worklist queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

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
from sqlalchemy import Table, and_, or_
from sqlmodel import Session, col, select

from ..domain.attachments import Attachment
from ..domain.model import HistoryEntry, Referral
from ..domain.patient import LocalIdentifier, Patient
from ..domain.sharing import Consent
from .tables import AttachmentRow, ReferralRow, TransitionRow

REFERRAL: Table = ReferralRow.__table__  # type: ignore[attr-defined]
TRANSITION: Table = TransitionRow.__table__  # type: ignore[attr-defined]


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
    def __init__(self, session: Session) -> None:
        self.session = session
        self.seen: dict[str, Referral] = {}
        self._new: set[str] = set()
        self._rows: dict[str, ReferralRow] = {}
        """Rows loaded, held so the session's (weak) identity map keeps them: saving, and the
        ledger's copy of the version being replaced, then find them without a query."""

    def add(self, referral: Referral) -> None:
        self.seen[referral.id] = referral
        self._new.add(referral.id)

    def get(self, referral_id: str, *, for_update: bool = False) -> Referral | None:
        """Load a referral; ``for_update`` locks its row (PostgreSQL) so concurrent
        transitions serialise and the version check stays honest."""
        row = self.session.get(ReferralRow, referral_id, with_for_update=for_update or None)
        if row is None:
            return None
        self._rows[referral_id] = row
        referral = _to_domain(row)
        self.seen[referral.id] = referral
        return referral

    def save(self, referral: Referral) -> None:
        """Write the aggregate's current state (called by the unit of work on commit)."""
        now = datetime.now(UTC)
        if referral.id in self._new:
            # New: straight to the driver (rx_messaging.fastsql), no load, no ORM bookkeeping
            # and no Core statement set-up: the hot path of POST /referrals.
            values = {"id": referral.id, **_to_row_fields(referral), "updated_at": now}
            fastsql.execute(
                self.session.connection(), fastsql.insert_into(REFERRAL, tuple(values)), values
            )
            self._new.discard(referral.id)
            return
        row = self.session.get(ReferralRow, referral.id)
        assert row is not None, "a loaded referral has a row"
        row.sqlmodel_update(_to_row_fields(referral))
        row.updated_at = now
        self.session.add(row)
        self.session.flush()  # before history rows that point at it

    def add_transitions(self, rows: list[dict[str, object]]) -> None:
        """Append history lines (straight to the driver: they are never updated)."""
        if rows:
            conn = self.session.connection()
            fastsql.execute_many(conn, fastsql.insert_into(TRANSITION, tuple(rows[0])), rows)

    def history(self, referral_id: str) -> list[HistoryEntry]:
        query = select(TransitionRow).where(TransitionRow.referral_id == referral_id)
        return [
            HistoryEntry(
                sequence=row.sequence,
                action=row.action,
                to_status=ReferralStatus(row.to_status),
                actor_org=row.actor_org,
                actor_practitioner=row.actor_practitioner,
                reason_code=row.reason_code,
                note=row.note,
                at=row.at,
                event_id=row.event_id,
                attachment_id=row.attachment_id,
            )
            for row in self.session.exec(query.order_by(col(TransitionRow.sequence)))
        ]

    def add_attachment(self, attachment: Attachment) -> None:
        """Stage a new attachment; it is written with the unit of work's commit."""
        self.session.add(AttachmentRow(**vars(attachment)))

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
        "created_at": r.created_at,
        "due_at": r.due_at,
    }


def _to_domain(row: ReferralRow) -> Referral:
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
    )


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


def _patient(row: ReferralRow) -> Patient:
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


def _consent(row: ReferralRow) -> Consent | None:
    if row.consent_basis is None or row.consent_recorded_at is None:
        return None
    return Consent(
        SharingBasis(row.consent_basis),
        row.consent_recorded_by_org or row.referrer_org,
        row.consent_recorded_by_practitioner,
        _utc(row.consent_recorded_at),
    )
