"""Reading and writing what routing learns from events: cases, decisions and organisations'
load. The consumer's per-event statements run through ``rx_messaging.fastsql`` (compiled once,
straight to the driver): SQLAlchemy's per-statement work would cost more than the statements."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from rx_messaging import fastsql
from sqlalchemy import bindparam, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from .tables import CaseRow, DecisionRow, OrganisationLoadRow, table

_CASES = table(CaseRow)
_LOADS = table(OrganisationLoadRow)
_CASE_EXISTS = sa_select(_CASES.c.referral_id).where(
    _CASES.c.referral_id == bindparam("referral_id")
)
_LOAD_OF = sa_select(_LOADS.c.assigned).where(
    _LOADS.c.ods_code == bindparam("ods_code"), _LOADS.c.day == bindparam("day")
)
_LOAD_DOWN = (
    update(_LOADS)
    .where(
        _LOADS.c.ods_code == bindparam("ods_code"),
        _LOADS.c.day == bindparam("day"),
        _LOADS.c.assigned > 0,
    )
    .values(assigned=_LOADS.c.assigned - 1)
)


def _load_up(insert: Any) -> Any:
    """One more referral for an organisation's day, as one upsert (so two consumers cannot
    lose an update)."""
    statement = insert(_LOADS).values(
        ods_code=bindparam("ods_code"), day=bindparam("day"), assigned=1
    )
    return statement.on_conflict_do_update(
        index_elements=["ods_code", "day"], set_={"assigned": _LOADS.c.assigned + 1}
    )


_LOAD_UP = {"postgresql": _load_up(postgresql.insert), "sqlite": _load_up(sqlite.insert)}


def case_exists(session: Session, referral_id: str) -> bool:
    """Whether routing has a case for ``referral_id`` (already routed under some event id)."""
    conn = session.connection()
    return fastsql.execute(conn, _CASE_EXISTS, {"referral_id": referral_id}).fetchone() is not None


def insert_case(session: Session, values: dict[str, Any]) -> None:
    """Store a new case at once (later events of the batch read and update it)."""
    fastsql.execute(session.connection(), fastsql.insert_into(_CASES, tuple(values)), values)


def load_of(session: Session, ods_code: str, day: date) -> int:
    """Referrals given to ``ods_code`` on local ``day`` and not declined by it."""
    conn = session.connection()
    row = fastsql.execute(conn, _LOAD_OF, {"ods_code": ods_code, "day": day.isoformat()}).fetchone()
    return int(row[0]) if row and row[0] else 0


def add_load(session: Session, ods_code: str, day: date, change: int) -> None:
    """Count one more (``change`` 1) or one fewer (-1) referral for an organisation's day.
    Written at once: the next referral of the batch reads it for the daily capacity."""
    conn = session.connection()
    params = {"ods_code": ods_code, "day": day.isoformat()}
    if change < 0:
        fastsql.execute(conn, _LOAD_DOWN, params)
    else:
        fastsql.execute(conn, _LOAD_UP[conn.dialect.name], params)


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
