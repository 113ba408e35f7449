"""Mapping cases to and from their rows, with their decisions and organisations' day loads.

The consumer applies a poll batch in one transaction. Its per-event statements run through
``rx_messaging.fastsql`` (compiled once, straight to the driver): SQLAlchemy's per-statement
work would cost more than the statements. New cases and decisions are queued in the session's
write buffer (``rx_messaging.buffer``: one insert per table per batch); a later event of the
batch that needs one of them writes the buffer first."""

from __future__ import annotations

import functools
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

from rx_contracts import Priority, ProviderType, ServiceType
from rx_messaging import fastsql
from rx_messaging.buffer import flush_buffer, write_buffer
from sqlalchemy import bindparam, event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row
from sqlalchemy.orm import Session as SessionClass
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session

from ..domain.decision import Decision, DecisionOutcome
from ..domain.errors import CapacityTaken
from ..domain.model import Case, CaseStatus
from ..domain.sla import Holder
from .tables import CaseRow, DecisionRow, OrganisationLoadRow, table

_CASES = table(CaseRow)
_DECISIONS = table(DecisionRow)
_LOADS = table(OrganisationLoadRow)
_CASE_EXISTS = select(_CASES.c.referral_id).where(_CASES.c.referral_id == bindparam("referral_id"))
_CASE = (
    select(_CASES, _DECISIONS.c.decided_at)
    .select_from(_CASES.outerjoin(_DECISIONS, _DECISIONS.c.id == _CASES.c.decision_id))
    .where(_CASES.c.referral_id == bindparam("referral_id"))
    .with_for_update(of=_CASES)  # PostgreSQL: events of one referral apply one at a time
)
_CASE_KEYS = tuple(str(column.key) for column in _CASE.selected_columns)
_CASE_CHANGING = (
    "priority",
    "cohorts",
    "declined_by",
    "assigned_org",
    "provider_type",
    "attempt",
    "sequence",
    "decision_id",
    "status",
)
"""The columns a case's later events change."""
_CASE_UPDATE = (
    update(_CASES)
    .where(_CASES.c.referral_id == bindparam("key"))
    .values({name: bindparam(name) for name in _CASE_CHANGING})
)
_POSITION = select(_CASES.c.assigned_org, _CASES.c.provider_type, _CASES.c.sequence).where(
    _CASES.c.referral_id == bindparam("referral_id")
)
_ACCEPTED = (
    update(_DECISIONS)
    .where(_DECISIONS.c.id == bindparam("decision_id"))
    .values(accepted_at=bindparam("at"))
)
_RELEASED = (
    update(_DECISIONS)
    .where(_DECISIONS.c.id == bindparam("decision_id"), _DECISIONS.c.released_at.is_(None))
    .values(released_at=bindparam("at"), release=bindparam("how"))
)
_LOAD_OF = select(_LOADS.c.assigned).where(
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


def _claim(insert: Any) -> Any:
    """One more referral for an organisation's day only while its count is under
    ``capacity``: the check and the increment are one statement, so concurrent consumers
    cannot both take the last place (the loser updates no row)."""
    statement = insert(_LOADS).values(
        ods_code=bindparam("ods_code"), day=bindparam("day"), assigned=1
    )
    return statement.on_conflict_do_update(
        index_elements=["ods_code", "day"],
        set_={"assigned": _LOADS.c.assigned + 1},
        where=_LOADS.c.assigned < bindparam("capacity"),
    )


_CLAIM = {"postgresql": _claim(postgresql.insert), "sqlite": _claim(sqlite.insert)}

_UNWRITTEN = "routing.unwritten"
"""session.info key of the transaction's :class:`_Unwritten`."""


class _Unwritten:
    """What the session's transaction keeps in memory instead of writing at once, so a
    consumer's batch writes it with one statement per table when the write buffer flushes
    (before the batch, or a record's savepoint, commits):

    - ``known``: organisations' day loads, each read once (stored count plus what this
      transaction added), and ``added``: the additions not written yet, one adding upsert per
      (organisation, day) at the flush;
    - ``referrals``: referrals with a case, decision or clock queued in the write buffer.

    A rollback (of a savepoint or of the transaction) forgets all of it: what was added or
    queued inside it is gone (the buffer writes everything queued before a savepoint begins,
    so nothing of an enclosing level is lost), and the counts are read again. A transaction's
    end forgets it too: another process may move the counts between transactions. On
    PostgreSQL (read committed) another consumer's commits are seen once per batch rather than
    once per event; the counts themselves stay exact (the upsert adds)."""

    def __init__(self) -> None:
        self.known: dict[tuple[str, str], int] = {}
        self.added: dict[tuple[str, str], int] = {}
        self.referrals: set[str] = set()

    def forget(self, *_: object) -> None:
        self.known.clear()
        self.added.clear()
        self.referrals.clear()

    def ended(self, _session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # the transaction, not a savepoint
            self.forget()

    def write_loads(self, conn: Connection) -> None:
        """Store the day-load additions (a write-buffer flush hook)."""
        if self.added:
            rows = [{"ods_code": o, "day": d, "added": n} for (o, d), n in self.added.items()]
            self.added = {}
            fastsql.execute_many(conn, _LOAD_UP[conn.dialect.name], rows)


def unwritten_referrals(session: Session) -> set[str]:
    """The referrals with a case, decision or clock queued in ``session``'s write buffer and
    not written yet: a statement about one of them must write the buffer first."""
    return _unwritten(session).referrals


def _unwritten(session: Session) -> _Unwritten:
    kept: _Unwritten | None = session.info.get(_UNWRITTEN)
    if kept is None:
        _listen()
        kept = session.info[_UNWRITTEN] = _Unwritten()
    return kept


@functools.cache
def _listen() -> None:
    """Listeners on the Session class, registered once (per session they cost more than a
    batch of one event), that pass over sessions keeping nothing unwritten."""
    event.listen(SessionClass, "after_soft_rollback", _forget_unwritten)
    event.listen(SessionClass, "after_transaction_end", _unwritten_ended)


def _forget_unwritten(session: Session, *_: object) -> None:
    kept: _Unwritten | None = session.info.get(_UNWRITTEN)
    if kept is not None:
        kept.forget()


def _unwritten_ended(session: Session, transaction: SessionTransaction) -> None:
    kept: _Unwritten | None = session.info.get(_UNWRITTEN)
    if kept is not None:
        kept.ended(session, transaction)


class CaseRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.seen: list[Case] = []
        self._new: set[str] = set()
        self._unwritten = _unwritten(session)

    def exists(self, referral_id: str) -> bool:
        """Whether routing has a case for ``referral_id``, stored or queued."""
        if referral_id in self._unwritten.referrals:
            return True
        conn = self.session.connection()
        found = fastsql.execute(conn, _CASE_EXISTS, {"referral_id": referral_id}).fetchone()
        return found is not None

    def get(self, referral_id: str) -> Case | None:
        """The referral's case, locked for the transaction."""
        self._written(referral_id)
        # On the driver (rx_messaging.fastsql): every later event of a referral loads its case.
        conn = self.session.connection()
        found = fastsql.fetch_rows(conn, _CASE, {"referral_id": referral_id})
        if not found:
            return None
        case = _to_case(SimpleNamespace(**dict(zip(_CASE_KEYS, found[0], strict=True))))
        self.seen.append(case)
        return case

    def add(self, case: Case) -> None:
        self.seen.append(case)
        self._new.add(case.referral_id)

    def save(self, case: Case) -> None:
        """Write the case's current state (called by the unit of work on commit): a new one
        is queued in the write buffer."""
        if case.referral_id in self._new:
            write_buffer(self.session).add(_CASES, _case_row(case))
            self._unwritten.referrals.add(case.referral_id)
            self._new.discard(case.referral_id)
            return
        fastsql.execute(self.session.connection(), _CASE_UPDATE, _case_changes(case))

    def add_decision(self, decision: Decision, event_id: str) -> None:
        """Queue a decision's row in the write buffer."""
        write_buffer(self.session).add(_DECISIONS, _decision_row(decision, event_id))
        self._unwritten.referrals.add(decision.referral_id)

    def accept_decision(self, referral_id: str, decision_id: str, at: datetime) -> None:
        self._written(referral_id)
        conn = self.session.connection()
        fastsql.execute(conn, _ACCEPTED, {"decision_id": decision_id, "at": at})

    def release_decision(self, referral_id: str, decision_id: str, how: str, at: datetime) -> None:
        self._written(referral_id)
        conn = self.session.connection()
        fastsql.execute(conn, _RELEASED, {"decision_id": decision_id, "at": at, "how": how})

    def load(self, ods_code: str, day: date) -> int:
        """Referrals given to ``ods_code`` on local ``day`` and not declined by it, as this
        transaction sees them (read once per transaction, see :class:`_Unwritten`)."""
        loads = self._unwritten
        key = (ods_code, day.isoformat())
        count = loads.known.get(key)
        if count is None:
            conn = self.session.connection()
            row = fastsql.execute(conn, _LOAD_OF, {"ods_code": key[0], "day": key[1]}).fetchone()
            stored = int(row[0]) if row and row[0] else 0
            count = loads.known[key] = stored + loads.added.get(key, 0)  # plus what is unwritten
        return count

    def change_load(
        self, ods_code: str, day: date, change: int, capacity: int | None = None
    ) -> None:
        """Count one more (``change`` 1) or one fewer (-1) referral for an organisation's day.
        One more for an organisation with a ``capacity`` claims its place at once (see
        ``_claim``; CapacityTaken if another process took the last one since the load was
        read); without one it is kept in memory and written when the write buffer flushes (the
        next referral of the batch reads it from memory); one fewer (a release, rare) is
        written at once, after what was kept."""
        loads = self._unwritten
        key = (ods_code, day.isoformat())
        if change > 0 and capacity is not None:
            self._claim(key, capacity)
            return
        if change < 0:
            conn = self.session.connection()
            loads.write_loads(conn)
            fastsql.execute(conn, _LOAD_DOWN, {"ods_code": key[0], "day": key[1]})
            loads.known.pop(key, None)  # read again when next needed
            return
        if key in loads.known:
            loads.known[key] += change
        loads.added[key] = loads.added.get(key, 0) + change
        write_buffer(self.session).on_flush(_UNWRITTEN, loads.write_loads)

    def _claim(self, key: tuple[str, str], capacity: int) -> None:
        loads = self._unwritten
        conn = self.session.connection()
        loads.write_loads(conn)  # what was kept for it while it had no capacity, first
        params = {"ods_code": key[0], "day": key[1], "capacity": capacity}
        if capacity < 1 or fastsql.execute(conn, _CLAIM[conn.dialect.name], params).rowcount != 1:
            loads.known.pop(key, None)  # read again: it is fuller than this transaction saw
            raise CapacityTaken(
                f"{key[0]} reached its daily capacity of {capacity} for {key[1]} meanwhile"
            )
        if key in loads.known:
            loads.known[key] += 1

    def position(self, referral_id: str) -> tuple[Holder, int | None]:
        """Who holds the referral now (None, None: nobody, or no case) and its sequence as
        routing last saw it (None: no case)."""
        row = self.session.connection().execute(_POSITION, {"referral_id": referral_id}).first()
        if row is None:
            return (None, None), None
        if row.assigned_org is None:
            return (None, None), row.sequence
        org_type = ProviderType(row.provider_type) if row.provider_type else None
        return (row.assigned_org, org_type), row.sequence

    def decisions(self, referral_id: str | None = None, limit: int = 100) -> list[Decision]:
        """Decisions, newest first."""
        query = select(_DECISIONS).order_by(_DECISIONS.c.decided_at.desc()).limit(limit)
        if referral_id:
            query = query.where(_DECISIONS.c.referral_id == referral_id)
        return [_to_decision(row) for row in self.session.connection().execute(query)]

    # ---- history, for the what-if replay ------------------------------------------------------

    def submitted_between(self, start: datetime, end: datetime) -> list[Case]:
        """Cases of the referrals submitted in [start, end), in submission order."""
        query = (
            select(_CASES, _DECISIONS.c.decided_at)
            .select_from(_CASES.outerjoin(_DECISIONS, _DECISIONS.c.id == _CASES.c.decision_id))
            .where(_CASES.c.submitted_at >= start, _CASES.c.submitted_at < end)
            .order_by(_CASES.c.submitted_at, _CASES.c.referral_id)
        )
        return [_to_case(row) for row in self.session.connection().execute(query)]

    def decisions_of(self, referral_ids: list[str]) -> dict[str, list[Decision]]:
        """Every decision about each of the referrals, in attempt order."""
        out: dict[str, list[Decision]] = {}
        for chunk in chunks(referral_ids):
            query = select(_DECISIONS).where(_DECISIONS.c.referral_id.in_(chunk))
            for row in self.session.connection().execute(query.order_by(_DECISIONS.c.attempt)):
                out.setdefault(row.referral_id, []).append(_to_decision(row))
        return out

    def acceptances(self) -> list[tuple[str, datetime, datetime]]:
        """(organisation, decided at, accepted at) of every recorded acceptance."""
        query = select(
            _DECISIONS.c.assigned_org, _DECISIONS.c.decided_at, _DECISIONS.c.accepted_at
        ).where(_DECISIONS.c.accepted_at.is_not(None), _DECISIONS.c.assigned_org.is_not(None))
        rows = self.session.connection().execute(query)
        return [(org, decided, accepted) for org, decided, accepted in rows]

    def _written(self, referral_id: str) -> None:
        """Write the buffer first if it holds the referral's case or a decision about it."""
        if referral_id in self._unwritten.referrals:
            flush_buffer(self.session)


def chunks(ids: list[str], size: int = 500) -> list[list[str]]:
    """``ids`` in slices small enough for one IN list."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


# Enum members become text with str() (a StrEnum's str() is its value): cheaper than .value
# on the consumer's per-event path.


def _case_row(c: Case) -> dict[str, Any]:
    return {
        "referral_id": c.referral_id,
        "service_type": str(c.service_type),
        "priority": str(c.priority),
        "postcode_district": c.postcode_district,
        "cohorts": c.cohorts,
        "submitted_at": c.submitted_at,
        "correlation_id": c.correlation_id,
        "declined_by": c.declined_by,
        "assigned_org": c.assigned_org,
        "provider_type": str(c.provider_type) if c.provider_type else None,
        "attempt": c.attempt,
        "sequence": c.sequence,
        "decision_id": c.decision_id,
        "status": str(c.status),
    }


def _case_changes(c: Case) -> dict[str, Any]:
    row = _case_row(c)
    return {"key": c.referral_id, **{name: row[name] for name in _CASE_CHANGING}}


def _to_case(row: Row[Any] | SimpleNamespace) -> Case:
    return Case(
        referral_id=row.referral_id,
        service_type=ServiceType(row.service_type),
        priority=Priority(row.priority),
        postcode_district=row.postcode_district,
        cohorts=list(row.cohorts),
        submitted_at=row.submitted_at,
        correlation_id=row.correlation_id,
        declined_by=list(row.declined_by),
        assigned_org=row.assigned_org,
        provider_type=ProviderType(row.provider_type) if row.provider_type else None,
        attempt=row.attempt,
        sequence=row.sequence,
        decision_id=row.decision_id,
        decided_at=row.decided_at,
        status=CaseStatus(row.status),
    )


def _decision_row(d: Decision, event_id: str) -> dict[str, Any]:
    return {
        "id": d.id,
        "referral_id": d.referral_id,
        "attempt": d.attempt,
        "outcome": str(d.outcome),
        "assigned_org": d.assigned_org,
        "provider_type": str(d.provider_type) if d.provider_type else None,
        "locality": d.locality,
        "rule_id": d.rule_id,
        "rule_version": d.rule_version,
        "reason": d.reason,
        "decided_at": d.decided_at,
        "event_id": event_id,
    }


def _to_decision(row: Row[Any]) -> Decision:
    return Decision(
        id=row.id,
        referral_id=row.referral_id,
        attempt=row.attempt,
        outcome=DecisionOutcome(row.outcome),
        assigned_org=row.assigned_org,
        provider_type=ProviderType(row.provider_type) if row.provider_type else None,
        locality=row.locality,
        rule_id=row.rule_id,
        rule_version=row.rule_version,
        reason=row.reason,
        decided_at=row.decided_at,
        accepted_at=row.accepted_at,
        released_at=row.released_at,
        release=row.release,
    )
