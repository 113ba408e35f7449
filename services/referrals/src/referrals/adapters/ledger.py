"""Every version of a referral and its assignments, kept in step with the referral by the unit
of work (the same transaction as the change), and the queries that read them back.

A referral's current version is its row in ``referral``; each version it supersedes is copied
to ``referral_version`` as it is replaced, so creating a referral costs nothing here. Each
assignment (``referral_assignment``, current state) has a row in
``referral_assignment_version`` for every version of the referral while it was open."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rx_contracts import new_id
from rx_messaging import fastsql
from sqlalchemy import Table, and_, bindparam, or_, text, update
from sqlmodel import Session, col, select

from ..domain import assignments
from ..domain.assignments import AssignmentState, AssignmentStatus
from ..domain.identifiers import Identifier
from ..domain.model import Referral
from .repository import REFERRAL, _to_domain, _utc
from .tables import AssignmentRow, AssignmentVersionRow, ReferralRow, ReferralVersionRow
from .transaction import Transaction

REFERRAL_VERSION: Table = ReferralVersionRow.__table__  # type: ignore[attr-defined]
ASSIGNMENT: Table = AssignmentRow.__table__  # type: ignore[attr-defined]
ASSIGNMENT_VERSION: Table = AssignmentVersionRow.__table__  # type: ignore[attr-defined]
HELD = frozenset({"routed", "info_requested", "accepted", "in_progress"})
"""Referral statuses in which an organisation holds it: an assignment is open."""
_FIELDS = ("status", "business_status", "reason_code", "reason_text", "outcome", "outcome_text")
_OPEN_ASSIGNMENT = select(ASSIGNMENT.c.id, *(ASSIGNMENT.c[name] for name in _FIELDS)).where(
    ASSIGNMENT.c.referral_id == bindparam("referral_id"), ASSIGNMENT.c.open.is_(True)
)
_UPDATE_ASSIGNMENT = (
    update(ASSIGNMENT)
    .where(ASSIGNMENT.c.id == bindparam("key"))
    .values({name: bindparam(name) for name in (*_FIELDS, "version", "open", "updated_at")})
)

_REFERRAL_KEYS = tuple(column.key for column in REFERRAL.columns)
_AS_IS = frozenset({str, int, bool, float, type(None)})
"""Value classes stored in a version's JSON state unchanged (most of a referral's columns)."""

IDENTIFIER_LOCKS = 0x52584944
"""The advisory-lock space of referrers' identifiers (the other key: the identifier's hash)."""

Cursor = tuple[datetime, str]
"""(updated_at, id) of the last item already seen."""


@dataclass(frozen=True)
class Visibility:
    """Whose records a query may return: an organisation's (sent or now assigned to it) or,
    for ops, everyone's."""

    organisation: str
    everything: bool = False


@dataclass(frozen=True)
class AssignmentQuery:
    visibility: Visibility
    owners: tuple[str, ...] = ()
    requesters: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    referral_ids: tuple[str, ...] = ()
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    after: Cursor | None = None
    limit: int = 50


@dataclass(frozen=True)
class ReferralQuery:
    visibility: Visibility
    requesters: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    identifier: Identifier | None = None
    """The referrer's identifier."""
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    after: Cursor | None = None
    limit: int = 50


class Ledger:
    def __init__(self, session: Session | Transaction) -> None:
        self.session = session

    # ---- writing (the unit of work, before it saves the referral) --------------------------

    def record(self, referral: Referral, loaded: Callable[[str], Mapping[str, Any]]) -> None:
        """Keep the version ``referral`` is about to supersede (its row as ``loaded`` gives
        it), and apply its pending steps to its assignments. A new referral (nothing
        superseded, no assignment yet) costs nothing.

        Straight to the driver (rx_messaging.fastsql), as the repository's inserts: this runs
        in every change of every referral, the consumers' included."""
        before = referral.version - len(referral.pending)
        if before == 0:
            return
        row = loaded(referral.id)
        conn = self.session.connection()
        snapshot = {
            "referral_id": referral.id,
            "version": before,
            "state": {key: _json_safe(row[key]) for key in _REFERRAL_KEYS},
            "updated_at": row["updated_at"],
        }
        fastsql.execute(conn, fastsql.insert_into(REFERRAL_VERSION, tuple(snapshot)), snapshot)
        current = self._open_assignment(conn, referral.id) if row["status"] in HELD else None
        versions: list[dict[str, Any]] = []
        for offset, step in enumerate(referral.pending, start=1):
            state = assignments.after(step, current[1] if current else None)
            if state is None:
                continue
            version = before + offset
            changed = {**_fields(state), "version": version, "open": state.open}
            changed["updated_at"] = step.at
            if step.action == "route":
                current = (new_id(), state)
                opened = self._opened(referral, current[0], version, step.at) | changed
                fastsql.execute(conn, fastsql.insert_into(ASSIGNMENT, tuple(opened)), opened)
            else:
                assert current is not None
                fastsql.execute(conn, _UPDATE_ASSIGNMENT, {"key": current[0], **changed})
            versions.append(
                {"assignment_id": current[0], "version": version, "updated_at": step.at}
                | _fields(state)
            )
            current = (current[0], state) if state.open else None
        if versions:
            statement = fastsql.insert_into(ASSIGNMENT_VERSION, tuple(versions[0]))
            fastsql.execute_many(conn, statement, versions)

    def _open_assignment(self, conn: Any, referral_id: str) -> tuple[str, AssignmentState] | None:
        raw = fastsql.execute(conn, _OPEN_ASSIGNMENT, {"referral_id": referral_id})
        found = raw.fetchone()
        if found is None:
            return None
        key, status, business, reason, text, outcome, outcome_text = found
        return key, AssignmentState(
            AssignmentStatus(status), business, reason, text, outcome, outcome_text
        )

    @staticmethod
    def _opened(referral: Referral, key: str, version: int, at: datetime) -> dict[str, Any]:
        assert referral.assigned_org and referral.assigned_provider_type, "routing assigned it"
        return {
            "id": key,
            "referral_id": referral.id,
            "organisation": referral.assigned_org,
            "provider_type": referral.assigned_provider_type.value,
            "referrer_org": referral.referrer_org,
            "opened_at": at,
            "first_version": version,
        }

    def lock_identifier(self, system: str, value: str) -> None:
        """Until the transaction ends, hold the lock of a referrer's identifier (PostgreSQL; on
        SQLite every writing transaction holds the database already): two conditional creates
        naming it at once then take turns, so the second finds the first's referral."""
        conn = self.session.connection()
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))"),
                {"space": IDENTIFIER_LOCKS, "key": f"{system}|{value}"},
            )

    # ---- reading ---------------------------------------------------------------------------

    def referral_at(self, referral_id: str, version: int) -> tuple[Referral, datetime] | None:
        """A superseded version of a referral and when it was written, if kept."""
        row = self.session.get(ReferralVersionRow, (referral_id, version))
        if row is None:
            return None
        return _to_domain(ReferralRow.model_validate(row.state)), _utc(row.updated_at)

    def assignment(self, assignment_id: str) -> AssignmentRow | None:
        return self.session.get(AssignmentRow, assignment_id)

    def assignment_at(self, assignment_id: str, version: int) -> AssignmentVersionRow | None:
        return self.session.get(AssignmentVersionRow, (assignment_id, version))

    def assignments_of(self, referral_id: str) -> list[AssignmentRow]:
        query = select(AssignmentRow).where(AssignmentRow.referral_id == referral_id)
        return list(self.session.exec(query.order_by(col(AssignmentRow.first_version))))

    def search_assignments(self, q: AssignmentQuery) -> list[AssignmentRow]:
        """Matching assignments whose referral the caller may see, oldest change first: up to
        ``q.limit``, and one more if there are more."""
        query = select(AssignmentRow).join(
            ReferralRow, col(ReferralRow.id) == col(AssignmentRow.referral_id)
        )
        query = _visible(query, q.visibility)
        for column, values in (
            (AssignmentRow.organisation, q.owners),
            (AssignmentRow.referrer_org, q.requesters),
            (AssignmentRow.status, q.statuses),
            (AssignmentRow.referral_id, q.referral_ids),
        ):
            if values:
                query = query.where(col(column).in_(values))
        query = _page(
            query, AssignmentRow.updated_at, AssignmentRow.id, q.updated_after, q.updated_before
        )
        query = _after(query, AssignmentRow.updated_at, AssignmentRow.id, q.after)
        return list(self.session.exec(query.limit(q.limit + 1)))

    def search_referrals(self, q: ReferralQuery) -> list[ReferralRow]:
        """Matching referrals the caller may see, oldest change first (one past the limit,
        if there are more)."""
        query = _visible(select(ReferralRow), q.visibility)
        if q.requesters:
            query = query.where(col(ReferralRow.referrer_org).in_(q.requesters))
        if q.statuses:
            query = query.where(col(ReferralRow.status).in_(q.statuses))
        if q.identifier is not None:
            query = query.where(
                col(ReferralRow.referrer_identifier_value) == q.identifier.value,
                col(ReferralRow.referrer_identifier_system) == q.identifier.system,
            )
        query = _page(
            query, ReferralRow.updated_at, ReferralRow.id, q.updated_after, q.updated_before
        )
        query = _after(query, ReferralRow.updated_at, ReferralRow.id, q.after)
        return list(self.session.exec(query.limit(q.limit + 1)))


def to_referral(row: ReferralRow) -> Referral:
    """The aggregate of a row a search returned."""
    return _to_domain(row)


def _visible(query: Any, visibility: Visibility) -> Any:
    if visibility.everything:
        return query
    org = visibility.organisation
    return query.where(
        or_(col(ReferralRow.referrer_org) == org, col(ReferralRow.assigned_org) == org)
    )


def _page(query: Any, at: Any, key: Any, after: datetime | None, before: datetime | None) -> Any:
    if after is not None:
        query = query.where(col(at) > _utc(after))
    if before is not None:
        query = query.where(col(at) < _utc(before))
    return query.order_by(col(at), col(key))


def _after(query: Any, at: Any, key: Any, cursor: Cursor | None) -> Any:
    if cursor is None:
        return query
    when, last = _utc(cursor[0]), cursor[1]
    return query.where(or_(col(at) > when, and_(col(at) == when, col(key) > last)))


def state_of(row: AssignmentRow | AssignmentVersionRow) -> AssignmentState:
    """An assignment's own fields, as the domain names them."""
    return AssignmentState(
        AssignmentStatus(row.status),
        row.business_status,
        row.reason_code,
        row.reason_text,
        row.outcome,
        row.outcome_text,
    )


def _fields(state: AssignmentState) -> dict[str, Any]:
    return {
        "status": state.status.value,
        "business_status": state.business_status,
        "reason_code": state.reason_code,
        "reason_text": state.reason_text,
        "outcome": state.outcome,
        "outcome_text": state.outcome_text,
    }


def _json_safe(value: Any) -> Any:
    if value.__class__ in _AS_IS:
        return value
    if isinstance(value, datetime):
        return _utc(value).isoformat()
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return value
