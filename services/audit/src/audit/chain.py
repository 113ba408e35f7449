"""The hash chain: how an entry is hashed, and appending events at its head.

An entry's hash is SHA-256 over the previous entry's hash and every recorded field, joined by
the ASCII unit separator (0x1f); control characters are refused at ingest, so the fields can
never be re-split differently. The payload is covered through its digest, SHA-256 of its
canonical JSON. The first entry links to a genesis hash derived from the chain id."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rx_contracts import ChainCheckpointed, Envelope
from rx_messaging import fastsql
from rx_messaging.buffer import write_buffer
from rx_messaging.consumer import PermanentError
from rx_messaging.records import Record
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, SessionTransaction

from .tables import ENTRY, ENTRY_ORG, HEAD

SEPARATOR = "\x1f"
NONE = "\x00"
"""Stands for a missing value in the hashed text (ingest refuses NUL in every field)."""
FIELDS_PER_ENTRY = 12
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
CHECKPOINT_TYPE = ChainCheckpointed.EVENT_TYPE

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LIMITS = {"event id": 64, "type": 200, "topic": 249, "referral id": 200, "actor": 64}
_HEAD_KEY = "audit.chain.head"


def genesis(chain_id: str) -> str:
    """The ``prev_hash`` of entry 1: binds the chain to its id, so a chain id cannot be swapped
    (to dodge another chain's checkpoints) without breaking the first link."""
    return hashlib.sha256(f"rx-audit-chain{SEPARATOR}{chain_id}".encode()).hexdigest()


def canonical_json(data: dict[str, Any]) -> str:
    """The one text of a payload that its digest is taken over."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def payload_digest(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()


def hashed_text(
    prev_hash: str,
    sequence: int,
    event_id: str,
    topic: str,
    partition: int,
    offset: int,
    type_: str,
    referral_id: str | None,
    actor_org: str | None,
    occurred_at_us: int,
    recorded_at_us: int,
    digest: str,
) -> str:
    """What an entry's hash is taken over (``verification.py`` inlines the same f-string in
    its hot loop; a test keeps the two equal)."""
    return (
        f"{prev_hash}\x1f{sequence}\x1f{event_id}\x1f{topic}\x1f{partition}\x1f{offset}"
        f"\x1f{type_}\x1f{referral_id or NONE}\x1f{actor_org or NONE}"
        f"\x1f{occurred_at_us}\x1f{recorded_at_us}\x1f{digest}"
    )


def entry_hash(*fields: Any) -> str:
    """SHA-256 of :func:`hashed_text` of the fields."""
    return hashlib.sha256(hashed_text(*fields).encode()).hexdigest()


def to_us(value: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return (aware - EPOCH) // _MICROSECOND


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


@dataclass
class Head:
    """The chain head as this session sees it, read once per session (a consumer batch)."""

    chain_id: str
    sequence: int
    hash: str
    event_sequence: int
    stored: bool
    appended: set[str] = field(default_factory=set)

    def store(self, conn: Connection) -> None:
        """Write this head to the database (the write buffer runs this once per flush, after
        the entries it queued)."""
        values = {
            "sequence": self.sequence,
            "hash": self.hash,
            "event_sequence": self.event_sequence,
        }
        if self.stored:
            _run(conn, "head", {"head_id": 1, **values})
        else:
            _run(
                conn,
                "new head",
                {"id": 1, "chain_id": self.chain_id, "checkpoint_sequence": 0, **values},
            )
            self.stored = True


def read_head(session: Session, *, lock: bool = False) -> Head | None:
    """The stored head, or None for an empty chain. ``lock``: hold the row (PostgreSQL) until
    the transaction ends, so appends from several processes queue up."""
    query = select(HEAD.c.chain_id, HEAD.c.sequence, HEAD.c.hash, HEAD.c.event_sequence).where(
        HEAD.c.id == 1
    )
    row = session.execute(query.with_for_update() if lock else query).first()
    if row is None:
        return None
    return Head(row.chain_id, row.sequence, row.hash, row.event_sequence, stored=True)


def _session_head(session: Session) -> Head:
    """The head cached for this session. A rollback (a record's savepoint too) forgets it, so
    the next append reads what the database really holds."""
    head: Head | None = session.info.get(_HEAD_KEY)
    if head is not None:
        return head
    if not session.info.get(_HEAD_KEY + ".listening"):
        event.listen(session, "after_soft_rollback", _forget_head)
        event.listen(session, "after_transaction_end", _forget_head_at_the_end)
        session.info[_HEAD_KEY + ".listening"] = True
    head = read_head(session, lock=True)
    if head is None:
        chain_id = str(uuid.uuid4())
        head = Head(chain_id, 0, genesis(chain_id), 0, stored=False)
    session.info[_HEAD_KEY] = head
    return head


def _forget_head(session: Session, *_: Any) -> None:
    session.info.pop(_HEAD_KEY, None)


def _forget_head_at_the_end(session: Session, transaction: SessionTransaction) -> None:
    # A released savepoint keeps what it appended; only the outermost transaction's end
    # (commit or rollback) lets other processes move the head.
    if transaction.parent is None:
        _forget_head(session)


def organisations_of(data: dict[str, Any]) -> set[str]:
    """Organisations an event concerns: its actor and every top-level ``organisation``,
    ``*_org`` or ``*_by`` field (referrer, assignee, decliner, target, …)."""
    found = set()
    actor = data.get("actor")
    if isinstance(actor, dict) and isinstance(actor.get("organisation"), str):
        found.add(actor["organisation"])
    for key, value in data.items():
        if isinstance(value, str) and (
            key == "organisation" or key.endswith("_org") or key.endswith("_by")
        ):
            found.add(value)
    return {org for org in found if 0 < len(org) <= 64 and not _CONTROL.search(org)}


def _actor_of(data: dict[str, Any]) -> str:
    actor = data.get("actor")
    if isinstance(actor, dict) and isinstance(actor.get("organisation"), str):
        return str(actor["organisation"])
    return "RX"  # no actor: the platform itself acted (routing decisions, clocks)


def _referral_of(data: dict[str, Any]) -> str | None:
    value = data.get("referral_id")
    return value if isinstance(value, str) and value else None


def _check_fields(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            continue
        if _CONTROL.search(value):
            raise PermanentError(f"malformed event: the {name} contains a control character")
        if len(value) > _LIMITS[name]:
            raise PermanentError(f"malformed event: the {name} is over {_LIMITS[name]} characters")


def _payload_text(value: bytes | None) -> str | None:
    if not value:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return None  # JSON in UTF-16/32: keep the canonical UTF-8 text instead


_STATEMENTS = {
    "head": update(HEAD)
    .where(HEAD.c.id == bindparam("head_id"))
    .values(
        sequence=bindparam("sequence"),
        hash=bindparam("hash"),
        event_sequence=bindparam("event_sequence"),
    ),
    "new head": insert(HEAD).values({c.name: bindparam(c.name) for c in HEAD.c}),
}


def _run(conn: Connection, name: str, params: dict[str, Any]) -> None:
    fastsql.execute(conn, _STATEMENTS[name], params)


def append(
    session: Session, envelope: Envelope, record: Record, now: datetime | None = None
) -> int | None:
    """Add one event at the head of the chain, in the caller's transaction (its rows are
    queued in the session's write buffer: written at the next flush, savepoint or commit);
    return its sequence, or None if this session already appended that event id (one event
    delivered on two topics in one batch). Any well-formed event is recorded, known type or not;
    PermanentError for one whose fields cannot be recorded faithfully."""
    data = envelope.data
    referral_id, actor = _referral_of(data), _actor_of(data)
    _check_fields(
        {
            "event id": envelope.id,
            "type": envelope.type,
            "topic": record.topic,
            "referral id": referral_id,
            "actor": actor,
        }
    )
    head = _session_head(session)
    if envelope.id in head.appended:
        return None
    # The record's value is the payload exactly as it travelled; tests and tools that append
    # envelopes without one get its canonical JSON. Either way the digest is over what is kept.
    payload = _payload_text(record.value) or canonical_json(data)
    digest = payload_digest(payload)
    sequence = head.sequence + 1
    occurred, recorded = to_us(envelope.time), to_us(now or datetime.now(UTC))
    new_hash = entry_hash(
        head.hash,
        sequence,
        envelope.id,
        record.topic,
        record.partition,
        record.offset,
        envelope.type,
        referral_id,
        actor,
        occurred,
        recorded,
        digest,
    )
    # Entries, their organisations and the head are queued in the session's write buffer: the
    # consumer writes a batch's entries with one executemany and the head once, at its end.
    buffer = write_buffer(session)
    buffer.add(
        ENTRY,
        {
            "sequence": sequence,
            "event_id": envelope.id,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "type": envelope.type,
            "referral_id": referral_id,
            "actor_org": actor,
            "occurred_at_us": occurred,
            "recorded_at_us": recorded,
            "payload": payload,
            "payload_digest": digest,
            "prev_hash": head.hash,
            "hash": new_hash,
        },
    )
    orgs = sorted(organisations_of(data))
    if orgs:
        buffer.extend(ENTRY_ORG, [{"organisation": o, "sequence": sequence} for o in orgs])
    if envelope.type != CHECKPOINT_TYPE:
        head.event_sequence = sequence
    head.sequence, head.hash = sequence, new_hash
    head.appended.add(envelope.id)
    buffer.on_flush(_HEAD_KEY, head.store)
    return sequence
