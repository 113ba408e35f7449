"""Mapping the Referral aggregate to and from its rows."""

from __future__ import annotations

from datetime import UTC, datetime

from rx_contracts import CohortFlags, Priority, ProviderType, ReferralStatus, ServiceType
from sqlmodel import Session, col, select

from ..domain.model import Patient, Referral
from .tables import ReferralRow, TransitionRow


class ReferralRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.seen: dict[str, Referral] = {}

    def add(self, referral: Referral) -> None:
        self.seen[referral.id] = referral

    def get(self, referral_id: str) -> Referral | None:
        row = self.session.get(ReferralRow, referral_id)
        if row is None:
            return None
        referral = _to_domain(row)
        self.seen[referral.id] = referral
        return referral

    def save(self, referral: Referral) -> None:
        """Write the aggregate's current state (called by the unit of work on commit)."""
        row = self.session.get(ReferralRow, referral.id) or ReferralRow(
            id=referral.id,
            created_at=referral.created_at,
            status="",
            version=0,
            sequence=0,
            referrer_org="",
            patient_postcode="",
            service_type="",
            priority="",
        )
        row.sqlmodel_update(_to_row_fields(referral))
        row.updated_at = datetime.now(UTC)
        self.session.add(row)

    def add_transition(self, row: TransitionRow) -> None:
        self.session.add(row)

    def history(self, referral_id: str) -> list[TransitionRow]:
        query = select(TransitionRow).where(TransitionRow.referral_id == referral_id)
        return list(self.session.exec(query.order_by(col(TransitionRow.sequence))))

    def list(self, limit: int = 50) -> list[Referral]:
        query = select(ReferralRow).order_by(col(ReferralRow.created_at).desc()).limit(limit)
        return [_to_domain(row) for row in self.session.exec(query)]


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
    }


def _to_domain(row: ReferralRow) -> Referral:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return Referral(
        id=row.id,
        referrer_org=row.referrer_org,
        practitioner=row.practitioner,
        patient=Patient(
            row.patient_postcode, row.patient_nhs_number, row.patient_name, row.patient_birth_date
        ),
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
        created_at=created,
        status=ReferralStatus(row.status),
        version=row.version,
        sequence=row.sequence,
        assigned_org=row.assigned_org,
        assigned_provider_type=ProviderType(row.assigned_provider_type)
        if row.assigned_provider_type
        else None,
    )
