"""Reading and writing what routing learns from events: cases, decisions and organisations'
load. The consumer's per-event statements run through ``rx_messaging.fastsql`` (compiled once,
straight to the driver): SQLAlchemy's per-statement work would cost more than the statements."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from rx_messaging import fastsql
from rx_messaging.buffer import write_buffer
from sqlalchemy import bindparam, event, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import SessionTransaction
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
    """``added`` more referrals for an organisation's day, as one upsert that adds to what
    is stored (so two consumers cannot lose each other's counts)."""
    statement = insert(_LOADS).values(
        ods_code=bindparam("ods_code"), day=bindparam("day"), assigned=bindparam("added")
    )
    return statement.on_conflict_do_update(
        index_elements=["ods_code", "day"],
        set_={"assigned": _LOADS.c.assigned + statement.excluded.assigned},
    )


_LOAD_UP = {"postgresql": _load_up(postgresql.insert), "sqlite": _load_up(sqlite.insert)}

_DAY_LOADS = "routing.day_loads"
"""session.info key of the transaction's :class:`_DayLoads`."""


class _DayLoads:
    """Organisations' day loads as the session's transaction sees them, kept in memory so a
    consumer's batch reads each (organisation, day) once and writes its additions with one
    upsert per (organisation, day) when the write buffer flushes (before the batch, or a
    record's savepoint, commits).

    ``known`` is the stored count plus what this transaction added; ``added`` the additions not
    written yet. A rollback (of a savepoint or of the transaction) forgets both: what was
    added inside it is gone, and the counts are read again. A transaction's end forgets them
    too: another process may move the counts between transactions. On PostgreSQL (read
    committed) another consumer's commits are seen once per batch rather than once per event;
    the counts themselves stay exact (the upsert adds)."""

    def __init__(self) -> None:
        self.known: dict[tuple[str, str], int] = {}
        self.added: dict[tuple[str, str], int] = {}

    def forget(self, *_: object) -> None:
        self.known.clear()
        self.added.clear()

    def ended(self, _session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # the transaction, not a savepoint
            self.forget()

    def write(self, conn: Connection) -> None:
        """Store the additions (a write-buffer flush hook)."""
        if self.added:
            rows = [{"ods_code": o, "day": d, "added": n} for (o, d), n in self.added.items()]
            self.added = {}
            fastsql.execute_many(conn, _LOAD_UP[conn.dialect.name], rows)


def _day_loads(session: Session) -> _DayLoads:
    loads: _DayLoads | None = session.info.get(_DAY_LOADS)
    if loads is None:
        loads = session.info[_DAY_LOADS] = _DayLoads()
        event.listen(session, "after_soft_rollback", loads.forget)
        event.listen(session, "after_transaction_end", loads.ended)
    return loads


def case_exists(session: Session, referral_id: str) -> bool:
    """Whether routing has a case for ``referral_id`` (already routed under some event id)."""
    conn = session.connection()
    return fastsql.execute(conn, _CASE_EXISTS, {"referral_id": referral_id}).fetchone() is not None


def insert_case(session: Session, values: dict[str, Any]) -> None:
    """Store a new case at once (later events of the batch read and update it)."""
    fastsql.execute(session.connection(), fastsql.insert_into(_CASES, tuple(values)), values)


def load_of(session: Session, ods_code: str, day: date) -> int:
    """Referrals given to ``ods_code`` on local ``day`` and not declined by it, as this
    transaction sees them (read once per transaction, see :class:`_DayLoads`)."""
    loads = _day_loads(session)
    key = (ods_code, day.isoformat())
    count = loads.known.get(key)
    if count is None:
        conn = session.connection()
        row = fastsql.execute(conn, _LOAD_OF, {"ods_code": key[0], "day": key[1]}).fetchone()
        stored = int(row[0]) if row and row[0] else 0
        count = loads.known[key] = stored + loads.added.get(key, 0)  # plus what is unwritten
    return count


def add_load(session: Session, ods_code: str, day: date, change: int) -> None:
    """Count one more (``change`` 1) or one fewer (-1) referral for an organisation's day.
    One more is kept in memory and written when the write buffer flushes (the next referral
    of the batch reads it from memory for the daily capacity); one fewer (a release, rare) is
    written at once, after what was kept."""
    loads = _day_loads(session)
    key = (ods_code, day.isoformat())
    if change < 0:
        conn = session.connection()
        loads.write(conn)
        fastsql.execute(conn, _LOAD_DOWN, {"ods_code": key[0], "day": key[1]})
        loads.known.pop(key, None)  # read again when next needed
        return
    if key in loads.known:
        loads.known[key] += change
    loads.added[key] = loads.added.get(key, 0) + change
    write_buffer(session).on_flush(_DAY_LOADS, loads.write)


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
