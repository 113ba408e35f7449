"""Idempotent consumers: a poll batch's effects and inbox rows commit in one transaction, then
the offsets are committed. Redeliveries are no-ops; poison goes to ``<topic>.dlq``.

Offsets are committed at most every ``commit_interval`` seconds, and whenever the consumer goes
idle, stops, or loses partitions in a rebalance: not after every batch. At low rates every event
is a batch of its own, and each offset commit is a round trip plus an append by the broker's
group coordinator. Committing less often weakens nothing: a batch's effects and inbox rows are
durable before its offsets are even queued, so what a crash redelivers the inbox turns into
no-ops; it only bounds how much a new owner reads again.

One transaction per batch instead of per event: a consumer catching up on a backlog pays for one
commit (one fsync, one SQLite write-lock hand-over) per few hundred events. A batch is first
applied straight through; if any of its events fails, that transaction is abandoned and the
batch applied again with each event in its own SAVEPOINT, so the failure rolls back only its
own effects (poison to the DLQ; a transient failure retried from that event on).

A batch's transaction runs on a connection the consumer keeps from one batch to the next (a
fresh one after any failure that escapes a batch, and closed with the consumer), in a session
that expires nothing at its commit (nothing reads its objects afterwards): at low rates every
event is a batch of its own, and a pool checkout and check-in (on PostgreSQL, with its liveness
ping) and the ORM's end-of-transaction bookkeeping cost more than the inbox's two statements.
The transaction itself is exactly as before: begun by the batch's first statement, committed
once with every effect and inbox row of the batch.

Append-only rows (inbox rows here; outbox, decision or audit rows in handlers) go through the
session's write buffer (``rx_messaging.buffer``): one ``executemany`` per table per batch on the
fast path, and per record inside its savepoint on the careful path, so a record rolled back
takes its queued rows with it."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rx_contracts import Envelope, EnvelopeError, decode
from rx_contracts.topics import dead_letter_topic
from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from . import fastsql
from .buffer import write_buffer
from .ports import Publisher, RecordSource, RejoinNeeded
from .records import Record
from .tables import InboxMessage, utcnow

log = logging.getLogger(__name__)

INBOX: Table = InboxMessage.__table__  # type: ignore[attr-defined]

COMMIT_INTERVAL_S = 1.0
"""How long settled offsets may wait before they are committed while records keep coming."""

_APPLIED_MAX = 256
"""The most event ids one inbox lookup asks about (a longer batch asks in chunks)."""


@functools.cache
def _applied(size: int) -> Select[tuple[str]]:
    """Which of ``size`` event ids (``id0``…) this consumer already applied. One statement
    per power-of-two size, the ids padded to it by repeating the last: a handful of
    statements, each compiled once and run on the driver's cursor, however batches vary."""
    return select(INBOX.c.event_id).where(
        INBOX.c.consumer == bindparam("consumer"),
        INBOX.c.event_id.in_([bindparam(f"id{i}") for i in range(size)]),
    )


Handler = Callable[[Session, Envelope, Record], None]
"""Applies one event's effects inside the given session; must not commit it. Several events
of a batch are applied one after another in the same session, and a batch whose transaction is
abandoned is applied again: a handler has no effects outside the session (no publishing, no
state kept between calls that the database does not hold). It may queue append-only rows in
``write_buffer(session)``; the consumer writes them with the record's other effects."""


class _RecordFailed(Exception):
    """A record failed on the fast path; the batch is applied again record by record."""


class PermanentError(Exception):
    """This event can never be applied (bad data, impossible state): dead-letter it."""


class TransientError(Exception):
    """A retryable failure: the batch stops at this record and is polled again later."""


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retry: bool = False


@dataclass
class _Batch:
    """What one pass over a poll batch decided, before anything is made durable."""

    result: BatchResult = field(default_factory=BatchResult)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    """(topic, partition) → next offset to read, for the records settled in this batch."""
    dead: list[tuple[Record, Exception]] = field(default_factory=list)
    retry_from: dict[tuple[str, int], int] = field(default_factory=dict)
    """(topic, partition) → offset of the record that failed and must be read again."""


class InboxConsumer:
    """Consumes records, applies each new event once, dead-letters poison, commits offsets."""

    def __init__(
        self,
        name: str,
        source: RecordSource,
        engine: Engine,
        handler: Handler,
        dlq: Publisher,
        on_batch: Callable[[BatchResult], None] | None = None,
        *,
        commit_interval: float = COMMIT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``on_batch`` hears each durable batch's outcome (metrics). Offsets wait at most
        ``commit_interval`` seconds (0: committed after every batch) while records keep
        coming; they are committed at once when a poll finds nothing, on :meth:`close`, and
        for partitions taken away in a rebalance."""
        self.on_batch = on_batch
        self.name = name
        self.source = source
        self.engine = engine
        self.handler = handler
        self.dlq = dlq
        self.commit_interval = commit_interval
        self._clock = clock
        self._pending: dict[tuple[str, int], int] = {}
        """Settled (topic, partition) → next offset to read, not committed yet."""
        self._due = 0.0
        self._rejoining = False
        """An offset commit was refused for want of group membership: the next poll waits."""
        self._connection: Connection | None = None
        """Kept between batches (see the module's docstring); None until the next batch."""
        source.when_revoked(self._revoked)

    def step(self, timeout: float = 0.5) -> bool:
        """One worker-loop step: True if records were handled; TransientError after a
        rewind, so the loop backs off before polling again."""
        result = self.consume_once(timeout)
        if result.retry:
            raise TransientError(f"{self.name}: a record failed and will be retried")
        return bool(result.applied or result.duplicates or result.dead_lettered)

    def consume_once(self, timeout: float = 0.5) -> BatchResult:
        """Poll one batch and process it in one transaction.

        Order of durability: effects + inbox rows commit, then poison goes to the DLQ, then the
        offsets are queued for the next offset commit (see :meth:`_settled`). A crash anywhere
        in between means redelivery, which the inbox turns into no-ops (and a poison record is
        parked again: at-least-once in the DLQ too). A transient failure rewinds that record's
        partition (the rest of its batch there waits) so it is tried again on the next poll.
        If the batch cannot be made durable (its commit, the DLQ or an offset commit it
        triggers fails), every partition is rewound to the batch's first record, so nothing is
        skipped. A poll that finds nothing commits the offsets still queued."""
        records = self.source.poll(self._poll_timeout(timeout))
        if not records:
            self.commit_offsets()  # idle: the progress so far becomes visible (lag 0)
            return BatchResult()
        try:
            batch = self._apply(records)
            for record, error in batch.dead:
                self._dead_letter(record, error)
            self._settled(batch.positions)
        except Exception:
            self._rewind(records)
            self._drop_connection()  # whatever failed, the next batch starts on a fresh one
            raise
        for (topic, partition), offset in batch.retry_from.items():
            self.source.seek(topic, partition, offset)
        if self.on_batch is not None:
            self.on_batch(batch.result)
        return batch.result

    def commit_offsets(self) -> None:
        """Commit every settled offset not committed yet (kept queued if the commit fails).

        A commit refused because this member is out of its group (put out while the broker was
        away or the machine stalled) or rebalancing is not a failure of the batch: the member
        rejoins inside a poll, so the next poll is given its full timeout and the offsets stay
        queued. (An overdue commit would otherwise make every poll a zero-wait one, and in
        those kafka-python never rejoins: for a pattern subscription, the audit consumer's, it
        first waits for fresh metadata and gives up there.) The rejoin hands this member's partitions to
        :meth:`_revoked` (which forgets them), so nothing queued for a partition it no longer
        owns is committed later; what it keeps is committed by the next commit."""
        if self._pending:
            try:
                self.source.commit(self._pending)
            except RejoinNeeded as exc:
                if not self._rejoining:
                    log.info("%s: offsets wait for this member to rejoin: %s", self.name, exc)
                self._rejoining = True
                return
            self._pending = {}
        self._rejoining = False

    def close(self) -> None:
        """Commit what is settled before the consumer stops; a failure only means the next
        owner reads those records again (no-ops). The source stays open: it is the caller's;
        the database connection kept between batches is closed."""
        try:
            self.commit_offsets()
        except Exception as exc:
            log.warning("%s: offsets not committed on stop: %s", self.name, exc)
        self._drop_connection()

    def _session(self) -> Session:
        """A session for one batch's transaction, on the connection kept between batches.
        The session begins the transaction with its first statement and owns it: its commit
        commits it, and closing it uncommitted rolls it back; the connection stays open."""
        connection = self._connection
        if connection is not None and connection.in_transaction():
            # A session would join that transaction and leave its commit to whoever began it:
            # never let a batch's commit be anything but a commit.
            self._drop_connection()
            connection = None
        if connection is None or connection.closed or connection.invalidated:
            connection = self._connection = self.engine.connect()
        return Session(bind=connection, expire_on_commit=False)

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()  # back to the pool, which resets (or discards) it
            except Exception as exc:
                log.warning("%s: database connection not closed cleanly: %s", self.name, exc)

    def _poll_timeout(self, timeout: float) -> float:
        """``timeout``, cut short while settled offsets wait: a poll that finds nothing
        commits them, so they go out when due however long an idle poll may wait."""
        if not self._pending or self._rejoining:
            return timeout
        return min(timeout, max(self._due - self._clock(), 0.0))

    def _settled(self, positions: dict[tuple[str, int], int]) -> None:
        """Queue a durable batch's positions; commit them all once the oldest has waited
        ``commit_interval``."""
        if not positions:
            return
        now = self._clock()
        if not self._pending:
            self._due = now + self.commit_interval
        self._pending.update(positions)
        if now >= self._due:
            self.commit_offsets()

    def _revoked(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """A rebalance takes ``partitions`` away (between batches): hand back what this member
        settled on them for the source to commit now, so their new owner starts there, and
        forget them, so no later commit moves the new owner's offsets back."""
        return {tp: self._pending.pop(tp) for tp in partitions if tp in self._pending}

    def _apply(self, records: list[Record]) -> _Batch:
        decoded: list[tuple[Record, Envelope | EnvelopeError]] = []
        for record in records:
            try:
                decoded.append((record, decode(record.key, record.value, record.headers)))
            except EnvelopeError as exc:
                decoded.append((record, exc))
        try:
            return self._apply_all(decoded)
        except _RecordFailed:
            # Somebody's record failed: start again, this time each record in its own
            # savepoint, so the failure costs only its own effects.
            return self._apply_each(decoded)

    def _apply_all(self, decoded: list[tuple[Record, Envelope | EnvelopeError]]) -> _Batch:
        """The fast path: every record applied straight into one transaction, the queued rows
        (inbox rows and the handlers') written once per table just before the commit. Any
        failure abandons the whole transaction (``_RecordFailed``)."""
        batch = _Batch()
        with self._session() as session:
            buffer = write_buffer(session)
            seen = self._already_applied(session, decoded)
            for record, envelope in decoded:
                tp = (record.topic, record.partition)
                if isinstance(envelope, EnvelopeError):
                    batch.dead.append((record, envelope))
                    batch.result.dead_lettered += 1
                elif envelope.id in seen:
                    batch.result.duplicates += 1  # redelivered, or one event on two topics
                else:
                    try:
                        self.handler(session, envelope, record)
                    except Exception as exc:
                        raise _RecordFailed from exc
                    seen.add(envelope.id)
                    buffer.add(INBOX, self._inbox_row(envelope, record))
                    batch.result.applied += 1
                batch.positions[tp] = record.offset + 1
            try:
                buffer.flush()  # every queued row of the batch: one executemany per table
            except Exception as exc:
                raise _RecordFailed from exc  # one record's rows did not fit: find whose
            session.commit()
        return batch

    def _apply_each(self, decoded: list[tuple[Record, Envelope | EnvelopeError]]) -> _Batch:
        """The careful path: each record in a savepoint; poison is parked, a transient failure
        stops its partition there (the records before it still commit)."""
        batch = _Batch()
        with self._session() as session:
            seen = self._already_applied(session, decoded)
            for record, envelope in decoded:
                tp = (record.topic, record.partition)
                if tp in batch.retry_from:
                    continue  # an earlier record of this partition must go first
                outcome = self._process(session, record, envelope, seen, batch)
                if outcome == "retry":
                    batch.retry_from[tp] = record.offset
                    batch.result.retry = True
                    continue
                setattr(batch.result, outcome, getattr(batch.result, outcome) + 1)
                batch.positions[tp] = record.offset + 1
            session.commit()
        return batch

    def _already_applied(
        self, session: Session, decoded: list[tuple[Record, Envelope | EnvelopeError]]
    ) -> set[str]:
        ids = [e.id for _, e in decoded if isinstance(e, Envelope)]
        if not ids:
            return set()
        conn = session.connection()
        found: set[str] = set()
        for start in range(0, len(ids), _APPLIED_MAX):
            chunk = ids[start : start + _APPLIED_MAX]
            size = 1 << (len(chunk) - 1).bit_length()
            params = {f"id{i}": chunk[min(i, len(chunk) - 1)] for i in range(size)}
            raw = fastsql.execute(conn, _applied(size), {"consumer": self.name, **params})
            found.update(row[0] for row in raw.fetchall())
        return found

    def _inbox_row(self, envelope: Envelope, record: Record) -> dict[str, object]:
        return {
            "consumer": self.name,
            "event_id": envelope.id,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "processed_at": utcnow(),
        }

    def _process(
        self,
        session: Session,
        record: Record,
        envelope: Envelope | EnvelopeError,
        seen: set[str],
        batch: _Batch,
    ) -> str:
        if isinstance(envelope, EnvelopeError):
            batch.dead.append((record, envelope))
            return "dead_lettered"
        if envelope.id in seen:
            return "duplicates"  # redelivered, or the same event on a second topic
        try:
            with session.begin_nested():
                self.handler(session, envelope, record)
                buffer = write_buffer(session)
                buffer.add(INBOX, self._inbox_row(envelope, record))
                buffer.flush()  # inside the savepoint: a failure here is this record's
        except (PermanentError, EnvelopeError) as exc:
            batch.dead.append((record, exc))
            return "dead_lettered"
        except Exception:
            log.exception(
                "%s: retrying %s[%d]@%d", self.name, record.topic, record.partition, record.offset
            )
            return "retry"
        seen.add(envelope.id)
        return "applied"

    def _rewind(self, records: list[Record]) -> None:
        """Seek every partition of a batch that was not made durable back to its first record."""
        first: dict[tuple[str, int], int] = {}
        for record in records:
            first.setdefault((record.topic, record.partition), record.offset)
        for (topic, partition), offset in first.items():
            self.source.seek(topic, partition, offset)

    def _dead_letter(self, record: Record, error: Exception) -> None:
        log.warning(
            "%s: dead-lettering %s[%d]@%d: %s",
            self.name,
            record.topic,
            record.partition,
            record.offset,
            error,
        )
        headers = [
            *record.headers,
            ("dlq_error", str(error)[:2000].encode()),
            ("dlq_consumer", self.name.encode()),
            ("dlq_source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ]
        self.dlq.publish(
            dead_letter_topic(record.topic), [(record.key or b"", record.value or b"", headers)]
        )
