"""Appending to and verifying the hash chain."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rx_contracts import Envelope
from rx_messaging.records import Record
from sqlmodel import Session, col, select

from .tables import AuditEntry, ChainHead

GENESIS = "0" * 64


def digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def entry_hash(entry: AuditEntry) -> str:
    """Hash over the previous hash and every recorded field of the entry."""
    fields = [
        entry.prev_hash,
        str(entry.sequence),
        entry.event_id,
        entry.topic,
        str(entry.partition),
        str(entry.offset),
        entry.type,
        entry.referral_id,
        entry.actor_org or "",
        _utc(entry.occurred_at).isoformat(),
        _utc(entry.recorded_at).isoformat(),
        entry.payload_digest,
    ]
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()


def append(session: Session, envelope: Envelope, record: Record) -> AuditEntry:
    """Add one event at the head of the chain, in the caller's transaction."""
    head = session.get(ChainHead, 1) or ChainHead()
    actor = envelope.data.get("actor")
    entry = AuditEntry(
        sequence=head.sequence + 1,
        event_id=envelope.id,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        type=envelope.type,
        referral_id=envelope.subject,
        # Events without an actor were made by the platform itself (routing, clocks).
        actor_org=actor.get("organisation") if isinstance(actor, dict) else "RX",
        occurred_at=_utc(envelope.time),
        recorded_at=datetime.now(UTC),
        payload=envelope.data,
        payload_digest=digest(envelope.data),
        prev_hash=head.hash,
        hash="",
    )
    entry.hash = entry_hash(entry)
    head.sequence, head.hash = entry.sequence, entry.hash
    session.add(entry)
    session.add(head)
    return entry


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    head_hash: str
    first_broken: int | None = None
    problem: str | None = None


def verify(entries: Iterable[AuditEntry]) -> Verification:
    """Recompute the chain in sequence order; report the first entry that does not fit."""
    prev, expected_seq, count = GENESIS, 1, 0
    for entry in entries:
        count += 1
        problem = None
        if entry.sequence != expected_seq:
            problem = f"sequence {entry.sequence} where {expected_seq} was expected"
        elif entry.prev_hash != prev:
            problem = "previous-hash link broken"
        elif entry.payload_digest != digest(entry.payload):
            problem = "payload does not match its digest"
        elif entry.hash != entry_hash(entry):
            problem = "entry hash does not match its contents"
        if problem:
            return Verification(False, count, prev, entry.sequence, problem)
        prev, expected_seq = entry.hash, expected_seq + 1
    return Verification(True, count, prev)


def all_entries(session: Session) -> Iterable[AuditEntry]:
    return session.exec(select(AuditEntry).order_by(col(AuditEntry.sequence)))


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
