"""Reading the directory and rules; writing decisions."""

from __future__ import annotations

from rx_contracts import Priority, ProviderType, ServiceType
from sqlmodel import Session, col, func, select

from ..domain.model import Organisation, Rule
from .tables import DecisionRow, LocalityRow, OrganisationRow, RuleRow


class RoutingRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def localities(self) -> dict[str, str]:
        return {
            row.postcode_district: row.locality for row in self.session.exec(select(LocalityRow))
        }

    def organisations(self) -> list[Organisation]:
        return [
            Organisation(
                r.ods_code, r.name, ProviderType(r.provider_type), frozenset(r.localities), r.active
            )
            for r in self.session.exec(select(OrganisationRow))
        ]

    def active_rules(self) -> list[Rule]:
        rows = self.session.exec(
            select(RuleRow).where(col(RuleRow.active)).order_by(col(RuleRow.id))
        )
        return [
            Rule(
                r.id,
                r.version,
                ServiceType(r.service_type),
                ProviderType(r.provider_type),
                frozenset(Priority(p) for p in r.priorities),
            )
            for r in rows
        ]

    def attempts(self, referral_id: str) -> int:
        query = (
            select(func.count())
            .select_from(DecisionRow)
            .where(DecisionRow.referral_id == referral_id)
        )
        return self.session.exec(query).one()

    def add_decision(self, row: DecisionRow) -> None:
        self.session.add(row)

    def decisions(self, referral_id: str | None = None, limit: int = 100) -> list[DecisionRow]:
        query = select(DecisionRow).order_by(col(DecisionRow.decided_at).desc()).limit(limit)
        if referral_id:
            query = query.where(DecisionRow.referral_id == referral_id)
        return list(self.session.exec(query))
