"""Reading the log: entries by referral, organisation, type and time, paged by sequence; a
referral's timeline across organisations; the entries the evaluation figures fold."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rx_contracts import ReferralSubmitted
from sqlalchemy import ColumnElement, Select, exists, func, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from ..domain.chain import from_us, to_us
from .tables import ENTRY, ENTRY_ORG, HEAD, REFERRAL_ORG


@dataclass(frozen=True)
class EntryFilter:
    """Which entries to return; every given condition must hold."""

    referral_id: str | None = None
    organisation: str | None = None
    """Every entry of the referrals this organisation sent or holds or held (any entry that
    names it involves it), and the entries about no referral that name it."""
    types: tuple[str, ...] = ()
    since: datetime | None = None
    """Events that happened at or after this time."""
    until: datetime | None = None
    """Events that happened before this time."""

    def apply(self, query: Select[Any], *, scan: bool = False) -> Select[Any]:
        """``query`` narrowed to the matching entries. ``scan``: the caller reads only a short
        stretch of the chain (a live stream's tail), so the organisation is checked entry by
        entry rather than by collecting all of its referrals' entries first."""
        if self.referral_id is not None:
            query = query.where(ENTRY.c.referral_id == self.referral_id)
        if self.organisation is not None:
            query = query.where(naming(self.organisation) if scan else involving(self.organisation))
        if self.types:
            query = query.where(ENTRY.c.type.in_(self.types))
        if self.since is not None:
            query = query.where(ENTRY.c.occurred_at_us >= to_us(self.since))
        if self.until is not None:
            query = query.where(ENTRY.c.occurred_at_us < to_us(self.until))
        return query


def involving(organisation: str) -> ColumnElement[bool]:
    """Entries of the referrals ``organisation`` is involved in, or that name it themselves."""
    return or_(
        ENTRY.c.referral_id.in_(
            select(REFERRAL_ORG.c.referral_id).where(REFERRAL_ORG.c.organisation == organisation)
        ),
        ENTRY.c.sequence.in_(
            select(ENTRY_ORG.c.sequence).where(ENTRY_ORG.c.organisation == organisation)
        ),
    )


def naming(organisation: str) -> ColumnElement[bool]:
    """The same entries as :func:`involving`, tested one entry at a time."""
    return or_(
        exists().where(
            REFERRAL_ORG.c.organisation == organisation,
            REFERRAL_ORG.c.referral_id == ENTRY.c.referral_id,
        ),
        exists().where(
            ENTRY_ORG.c.organisation == organisation, ENTRY_ORG.c.sequence == ENTRY.c.sequence
        ),
    )


SCAN_AT_MOST = 5000
"""Entries past the cursor up to which an organisation's filter tests entry by entry; further
from the head it looks its referrals' entries up by index."""


class LogQueries:
    """Reads of the log in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def find(self, where: EntryFilter, after: int, limit: int) -> list[dict[str, Any]]:
        """Matching entries with a sequence above ``after``, in chain order, at most
        ``limit``, as :func:`entry_dict` gives them."""
        query = (
            select(ENTRY).where(ENTRY.c.sequence > after).order_by(ENTRY.c.sequence).limit(limit)
        )
        # A live stream's tail: a few new entries to test beat a busy organisation's whole
        # history, sorted, at every poll.
        scan = where.organisation is not None and self.head_sequence() - after <= SCAN_AT_MOST
        return [entry_dict(row) for row in self._session.execute(where.apply(query, scan=scan))]

    def head_sequence(self) -> int:
        """The newest sequence (0 for an empty chain)."""
        query = select(func.coalesce(func.max(HEAD.c.sequence), 0))
        return int(self._session.execute(query).scalar_one())

    def involves(self, referral_id: str, organisation: str) -> bool:
        """Whether any recorded event of the referral names ``organisation``."""
        query = select(REFERRAL_ORG.c.referral_id).where(
            REFERRAL_ORG.c.organisation == organisation, REFERRAL_ORG.c.referral_id == referral_id
        )
        return self._session.execute(query).first() is not None

    def referrals_involving(self, organisation: str) -> set[str]:
        """The referrals any of whose recorded events name ``organisation``."""
        query = select(REFERRAL_ORG.c.referral_id).where(
            REFERRAL_ORG.c.organisation == organisation
        )
        return set(self._session.execute(query).scalars())

    def timeline(self, referral_id: str) -> list[dict[str, Any]]:
        """The referral's events in the order they happened (event time; chain order breaks
        ties), each with the time since submission. Chain order is the order of recording,
        which can differ across topics. Empty if the log holds nothing about the referral."""
        rows = self._session.execute(
            select(ENTRY)
            .where(ENTRY.c.referral_id == referral_id)
            .order_by(ENTRY.c.occurred_at_us, ENTRY.c.sequence)
        ).all()
        if not rows:
            return []
        submitted = next((r for r in rows if r.type == ReferralSubmitted.EVENT_TYPE), rows[0])
        start = submitted.occurred_at_us
        steps = []
        for row in rows:
            payload = json.loads(row.payload)
            actor = payload.get("actor") if isinstance(payload.get("actor"), dict) else {}
            steps.append(
                {
                    "sequence": row.sequence,
                    "event_id": row.event_id,
                    "type": row.type,
                    "actor_org": row.actor_org,
                    "actor_practitioner": actor.get("practitioner"),
                    "status": payload.get("status"),
                    "assigned_org": payload.get("assigned_org"),
                    "accessed": payload.get("accessed"),
                    "topic": row.topic,
                    "occurred_at": from_us(row.occurred_at_us),
                    "elapsed_seconds": (row.occurred_at_us - start) / 1_000_000,
                }
            )
        return steps

    def figure_rows(
        self, types: tuple[str, ...], after: int, limit: int
    ) -> Sequence[Row[Any, Any, Any, Any, Any]]:
        """(sequence, type, referral id, occurred_at_us, payload) of referral entries of
        ``types`` with a sequence above ``after``, in chain order, at most ``limit``."""
        query = (
            select(
                ENTRY.c.sequence,
                ENTRY.c.type,
                ENTRY.c.referral_id,
                ENTRY.c.occurred_at_us,
                ENTRY.c.payload,
            )
            .where(ENTRY.c.type.in_(types), ENTRY.c.referral_id.is_not(None))
            .where(ENTRY.c.sequence > after)
            .order_by(ENTRY.c.sequence)
            .limit(limit)
        )
        return self._session.execute(query).all()


def entry_dict(row: Row[Any]) -> dict[str, Any]:
    """An entry as the API shows it: times as datetimes, the payload as JSON."""
    return {
        "sequence": row.sequence,
        "event_id": row.event_id,
        "type": row.type,
        "actor_org": row.actor_org,
        "referral_id": row.referral_id,
        "topic": row.topic,
        "partition": row.partition,
        "offset": row.offset,
        "occurred_at": from_us(row.occurred_at_us),
        "recorded_at": from_us(row.recorded_at_us),
        "payload": json.loads(row.payload),
        "payload_digest": row.payload_digest,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }
