"""The chain as stored: the head row, new entries, and the organisations each referral involves
(the read model behind the organisation filter).

Appends are queued in the transaction's write buffer (``rx_messaging.buffer``): a consumer
batch's entries are written with one ``executemany`` per table, and the head once, after them;
the referral's organisations likewise, each pair once, skipping those already stored. The head
is read once per transaction and cached in the session."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rx_messaging import fastsql
from rx_messaging.buffer import write_buffer
from sqlalchemy import bindparam, event, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql import ClauseElement

from ..domain.chain import Entry, Head
from .scan import CHUNK, scan
from .tables import ENTRY, ENTRY_ORG, HEAD, REFERRAL_ORG

_HEAD_KEY = "audit.chain.head"

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

_HEAD = select(
    HEAD.c.chain_id, HEAD.c.sequence, HEAD.c.hash, HEAD.c.event_sequence, HEAD.c.checkpoint_sequence
).where(HEAD.c.id == 1)
_HEAD_LOCKED = _HEAD.with_for_update()

_PAIR: dict[str, Any] = {
    "organisation": bindparam("organisation"),
    "referral_id": bindparam("referral_id"),
}
_NEW_PAIRS: dict[str, ClauseElement] = {
    # A pair another event (or another consumer process) stored first is skipped, not an error.
    "sqlite": sqlite.insert(REFERRAL_ORG).values(_PAIR).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(REFERRAL_ORG).values(_PAIR).on_conflict_do_nothing(),
}


@dataclass(slots=True)
class _SessionHead:
    """The head as this session sees it, whether its row exists yet, and the (organisation,
    referral) pairs its entries brought since the last flush."""

    head: Head
    stored: bool
    involved: set[tuple[str, str]] = field(default_factory=set)

    def store(self, conn: Connection) -> None:
        """Write the pairs and the head (the write buffer runs this once per flush, after the
        entries). Both are forgotten with a rollback, as the buffer forgets its rows."""
        if self.involved:
            rows = [{"organisation": o, "referral_id": r} for o, r in self.involved]
            self.involved = set()
            fastsql.execute_many(conn, _NEW_PAIRS[conn.dialect.name], rows)
        head = self.head
        values = {
            "sequence": head.sequence,
            "hash": head.hash,
            "event_sequence": head.event_sequence,
        }
        if self.stored:
            fastsql.execute(conn, _STATEMENTS["head"], {"head_id": 1, **values})
        else:
            row = {"id": 1, "chain_id": head.chain_id, "checkpoint_sequence": 0, **values}
            fastsql.execute(conn, _STATEMENTS["new head"], row)
            self.stored = True


class ChainRepository:
    """The chain in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def head(self) -> Head:
        """The head to append to; a new chain's if the database holds none. Read once per
        transaction and locked (PostgreSQL) until it ends, so appends from several processes
        queue up. A rollback (a record's savepoint too) forgets it, so the next append reads
        what the database really holds."""
        session = self._session
        cached: _SessionHead | None = session.info.get(_HEAD_KEY)
        if cached is not None:
            return cached.head
        _listen()
        head = self.stored_head(lock=True)
        cached = (
            _SessionHead(head, True) if head is not None else _SessionHead(Head.new_chain(), False)
        )
        session.info[_HEAD_KEY] = cached
        return cached.head

    def add(self, entry: Entry) -> None:
        """Queue ``entry``, its organisations and the head it moved (written at the next
        flush, savepoint or commit). The organisations of an entry about a referral go to the
        referral's (the read model); those of any other entry, to the entry's own."""
        buffer = write_buffer(self._session)
        event_ = entry.event
        buffer.add(
            ENTRY,
            {
                "sequence": entry.sequence,
                "event_id": event_.id,
                "topic": event_.topic,
                "partition": event_.partition,
                "offset": event_.offset,
                "type": event_.type,
                "referral_id": event_.referral_id,
                "actor_org": event_.actor_org,
                "occurred_at_us": event_.occurred_at_us,
                "recorded_at_us": entry.recorded_at_us,
                "payload": event_.payload,
                "payload_digest": event_.payload_digest,
                "prev_hash": entry.prev_hash,
                "hash": entry.hash,
            },
        )
        state: _SessionHead = self._session.info[_HEAD_KEY]
        referral_id = event_.referral_id
        if referral_id is not None:
            state.involved.update([(o, referral_id) for o in event_.organisations])
        elif event_.organisations:
            buffer.extend(
                ENTRY_ORG,
                [{"organisation": o, "sequence": entry.sequence} for o in event_.organisations],
            )
        buffer.on_flush(_HEAD_KEY, state.store)

    def stored_head(self, *, lock: bool = False) -> Head | None:
        """The head row, or None for an empty chain. ``lock``: hold the row (PostgreSQL)
        until the transaction ends."""
        # On the driver (rx_messaging.fastsql): the consumer reads the head once per batch,
        # which at low rates is once per event, and the ORM session's execute costs several
        # times the query.
        conn = self._session.connection()
        rows = fastsql.fetch_rows(conn, _HEAD_LOCKED if lock else _HEAD, {})
        if not rows:
            return None
        chain_id, sequence, hash_, event_sequence, checkpoint_sequence = rows[0]
        return Head(chain_id, sequence, hash_, event_sequence, checkpoint_sequence)

    def mark_checkpointed(self, sequence: int) -> None:
        """Record that a checkpoint covering ``sequence`` was staged."""
        self._session.execute(
            update(HEAD).where(HEAD.c.id == 1).values(checkpoint_sequence=sequence)
        )

    def count(self) -> int:
        """How many entries are stored."""
        return int(self._session.execute(select(func.count()).select_from(ENTRY)).scalar_one())

    def scan(self, chunk: int = CHUNK) -> Iterator[Sequence[Any]]:
        """Every entry as a plain tuple in sequence order, ``chunk`` at a time, read on a
        connection of its own outside this session's transaction (see ``scan.scan``)."""
        bind = self._session.get_bind()
        assert isinstance(bind, Engine)
        return scan(bind, chunk)


@functools.cache
def _listen() -> None:
    """Listeners on the Session class, registered once (per session they cost more than a
    batch of one event); sessions without a head pass through them."""
    event.listen(Session, "after_soft_rollback", _forget_head)
    event.listen(Session, "after_transaction_end", _forget_head_at_the_end)


def _forget_head(session: Session, *_: Any) -> None:
    session.info.pop(_HEAD_KEY, None)


def _forget_head_at_the_end(session: Session, transaction: SessionTransaction) -> None:
    # A released savepoint keeps what it appended; only the outermost transaction's end
    # (commit or rollback) lets other processes move the head.
    if transaction.parent is None:
        _forget_head(session)
