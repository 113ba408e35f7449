"""Reading and writing what routing learns from events: cases, decisions and organisations'
load. The consumer's per-event statements run through ``rx_messaging.fastsql`` (compiled once,
straight to the driver): SQLAlchemy's per-statement work would cost more than the statements."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from rx_messaging import fastsql
from rx_messaging.buffer import flush_buffer, write_buffer
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

_UNWRITTEN = "routing.unwritten"
"""session.info key of the transaction's :class:`_Unwritten`."""


class _Unwritten:
    """What the session's transaction keeps in memory instead of writing at once, so a
    consumer's batch writes it with one statement per table when the write buffer flushes
    (before the batch, or a record's savepoint, commits):

    - ``known``: organisations' day loads, each read once (stored count plus what this
      transaction added), and ``added``: the additions not written yet, one adding upsert per
      (organisation, day) at the flush;
    - ``cases``: referrals whose new case is queued in the write buffer (written at its flush).

    A rollback (of a savepoint or of the transaction) forgets all of it: what was added or
    queued inside it is gone (the buffer writes everything queued before a savepoint begins,
    so nothing of an enclosing level is lost), and the counts are read again. A transaction's
    end forgets it too: another process may move the counts between transactions. On
    PostgreSQL (read committed) another consumer's commits are seen once per batch rather than
    once per event; the counts themselves stay exact (the upsert adds)."""

    def __init__(self) -> None:
        self.known: dict[tuple[str, str], int] = {}
        self.added: dict[tuple[str, str], int] = {}
        self.cases: set[str] = set()

    def forget(self, *_: object) -> None:
        self.known.clear()
        self.added.clear()
        self.cases.clear()

    def ended(self, _session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # the transaction, not a savepoint
            self.forget()

    def write_loads(self, conn: Connection) -> None:
        """Store the day-load additions (a write-buffer flush hook)."""
        if self.added:
            rows = [{"ods_code": o, "day": d, "added": n} for (o, d), n in self.added.items()]
            self.added = {}
            fastsql.execute_many(conn, _LOAD_UP[conn.dialect.name], rows)


def _unwritten(session: Session) -> _Unwritten:
    kept: _Unwritten | None = session.info.get(_UNWRITTEN)
    if kept is None:
        kept = session.info[_UNWRITTEN] = _Unwritten()
        event.listen(session, "after_soft_rollback", kept.forget)
        event.listen(session, "after_transaction_end", kept.ended)
    return kept


def case_exists(session: Session, referral_id: str) -> bool:
    """Whether routing has a case for ``referral_id`` (already routed under some event id),
    stored or queued in this transaction."""
    if referral_id in _unwritten(session).cases:
        return True
    conn = session.connection()
    return fastsql.execute(conn, _CASE_EXISTS, {"referral_id": referral_id}).fetchone() is not None


def insert_case(session: Session, values: dict[str, Any]) -> None:
    """Queue a new case in the write buffer (one insert per batch); :func:`case_for_update`
    writes it first if a later event of the batch needs it."""
    write_buffer(session).add(_CASES, values)
    _unwritten(session).cases.add(values["referral_id"])


def case_for_update(session: Session, referral_id: str) -> CaseRow | None:
    """The referral's case, locked for update (written first if still queued)."""
    if referral_id in _unwritten(session).cases:
        flush_buffer(session)
    return session.get(CaseRow, referral_id, with_for_update=True)


def load_of(session: Session, ods_code: str, day: date) -> int:
    """Referrals given to ``ods_code`` on local ``day`` and not declined by it, as this
    transaction sees them (read once per transaction, see :class:`_Unwritten`)."""
    loads = _unwritten(session)
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
    loads = _unwritten(session)
    key = (ods_code, day.isoformat())
    if change < 0:
        conn = session.connection()
        loads.write_loads(conn)
        fastsql.execute(conn, _LOAD_DOWN, {"ods_code": key[0], "day": key[1]})
        loads.known.pop(key, None)  # read again when next needed
        return
    if key in loads.known:
        loads.known[key] += change
    loads.added[key] = loads.added.get(key, 0) + change
    write_buffer(session).on_flush(_UNWRITTEN, loads.write_loads)


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
