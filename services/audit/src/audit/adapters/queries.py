"""Reading the log: entries by referral, organisation, type and time, paged by sequence; a
referral's timeline across organisations; the entries the evaluation figures fold."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rx_contracts import ReferralSubmitted
from sqlalchemy import Select, func, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from ..domain.chain import from_us, to_us
from .tables import ENTRY, ENTRY_ORG, HEAD


@dataclass(frozen=True)
class EntryFilter:
    """Which entries to return; every given condition must hold."""

    referral_id: str | None = None
    organisation: str | None = None
    types: tuple[str, ...] = ()
    since: datetime | None = None
    """Events that happened at or after this time."""
    until: datetime | None = None
    """Events that happened before this time."""

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.referral_id is not None:
            query = query.where(ENTRY.c.referral_id == self.referral_id)
        if self.organisation is not None:
            query = query.join(
                ENTRY_ORG,
                (ENTRY_ORG.c.sequence == ENTRY.c.sequence)
                & (ENTRY_ORG.c.organisation == self.organisation),
            )
        if self.types:
            query = query.where(ENTRY.c.type.in_(self.types))
        if self.since is not None:
            query = query.where(ENTRY.c.occurred_at_us >= to_us(self.since))
        if self.until is not None:
            query = query.where(ENTRY.c.occurred_at_us < to_us(self.until))
        return query


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
        return [entry_dict(row) for row in self._session.execute(where.apply(query))]

    def head_sequence(self) -> int:
        """The newest sequence (0 for an empty chain)."""
        query = select(func.coalesce(func.max(HEAD.c.sequence), 0))
        return int(self._session.execute(query).scalar_one())

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
