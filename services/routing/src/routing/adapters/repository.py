"""Reading and writing what routing learns from events: decisions and organisations' load."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from .tables import DecisionRow, OrganisationLoadRow, table


def load_of(session: Session, ods_code: str, day: date) -> int:
    """Referrals given to ``ods_code`` on local ``day`` and not declined by it."""
    loads = table(OrganisationLoadRow)
    value = (
        session.connection()
        .execute(
            sa_select(loads.c.assigned).where(
                loads.c.ods_code == ods_code, loads.c.day == day.isoformat()
            )
        )
        .scalar()
    )
    return int(value or 0)


def add_load(session: Session, ods_code: str, day: date, change: int) -> None:
    """Count one more (``change`` 1) or one fewer (-1) referral for an organisation's day, as
    one upsert so two consumers cannot lose an update."""
    loads = table(OrganisationLoadRow)
    connection = session.connection()
    if change < 0:
        connection.execute(
            update(loads)
            .where(
                loads.c.ods_code == ods_code,
                loads.c.day == day.isoformat(),
                loads.c.assigned > 0,
            )
            .values(assigned=loads.c.assigned + change)
        )
        return
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(loads).values(ods_code=ods_code, day=day.isoformat(), assigned=change)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["ods_code", "day"], set_={"assigned": loads.c.assigned + change}
        )
    )


def decisions(
    session: Session,
    referral_id: str | None = None,
    limit: int = 100,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[DecisionRow]:
    """Decisions, newest first."""
    query = select(DecisionRow).order_by(col(DecisionRow.decided_at).desc()).limit(limit)
    if referral_id:
        query = query.where(DecisionRow.referral_id == referral_id)
    if since is not None:
        query = query.where(col(DecisionRow.decided_at) >= since)
    if until is not None:
        query = query.where(col(DecisionRow.decided_at) < until)
    return list(session.exec(query))
