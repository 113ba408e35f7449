"""A per-transaction write buffer: append-only rows queued by handlers, written with one
``executemany`` per table.

A consumer applying a poll batch of a few hundred events in one transaction would otherwise
pay SQLAlchemy's per-statement cost for every inbox, outbox, audit or
decision row of every event. Instead a handler queues such rows in the session's buffer::

    write_buffer(session).add(OUTBOX, row)

and :class:`~rx_messaging.consumer.InboxConsumer` flushes the buffer right before it commits
the batch (fast path) or inside each record's savepoint (careful path).

The contract:

- **Only rows nobody reads back in the same transaction.** A queued row is not in the database
  until the buffer is flushed, so queries in the transaction do not see it. Rows a handler
  reads back within a batch (capacity counters, a case it updates later) are written at once,
  as before. Code about to read or update a table it also queues into calls
  :meth:`WriteBuffer.flush` first.
- **Written at every transaction boundary, in the level they were queued in.** Queued rows are
  written before a savepoint begins, before a savepoint is released and before the session
  commits (so a plain ``session.commit()`` loses nothing), and whenever ``flush`` is called.
  Rows are written per table in the order the tables were first used, after the ORM's own
  pending objects.
- **Dropped with their rollback.** A rollback (a savepoint's or the whole transaction's)
  forgets the rows queued since the last write: those are exactly the rows queued inside the
  level that was rolled back, by the rule above.
- **Flush hooks** (:meth:`WriteBuffer.on_flush`) run after the rows, once per flush, keyed so a
  handler registering the same key for every event still writes once (e.g. the audit chain's
  head); they follow the same rules as rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, SessionTransaction

from . import fastsql

_KEY = "rx_messaging.write_buffer"

FlushHook = Callable[[Connection], None]


class WriteBuffer:
    """Rows and flush hooks queued in one session; see the module's docstring."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._rows: dict[Table, list[Mapping[str, Any]]] = {}
        self._hooks: dict[str, FlushHook] = {}

    def add(self, table: Table, row: Mapping[str, Any]) -> None:
        """Queue one row for ``table`` (column name → value, as for a Core insert; the same
        columns in every row of a table is fastest)."""
        self._in_transaction()
        rows = self._rows.get(table)
        if rows is None:
            self._rows[table] = [row]
        else:
            rows.append(row)

    def extend(self, table: Table, rows: Iterable[Mapping[str, Any]]) -> None:
        """Queue several rows for ``table``."""
        self._in_transaction()
        self._rows.setdefault(table, []).extend(rows)

    def on_flush(self, key: str, hook: FlushHook) -> None:
        """Run ``hook`` with the session's connection at the next flush, after the rows. A
        later hook under the same key replaces an earlier one not yet run."""
        self._in_transaction()
        self._hooks[key] = hook

    def __len__(self) -> int:
        """Rows queued and not yet written."""
        return sum(len(rows) for rows in self._rows.values())

    @property
    def pending(self) -> bool:
        """Whether anything (rows or hooks) waits to be written."""
        return bool(self._rows or self._hooks)

    def flush(self) -> None:
        """Write everything queued, in the session's current transaction level."""
        if self.pending:
            # Handlers may mix ORM objects and queued rows; the ORM's go first, so a queued
            # row can refer to them.
            self._session.flush()
            self._write(self._session.connection())

    def discard(self) -> None:
        """Forget everything queued (its transaction level was rolled back)."""
        self._rows.clear()
        self._hooks.clear()

    def _in_transaction(self) -> None:
        # Queued rows belong to a transaction: begin the session's (lazily; no SQL yet) so a
        # rollback before anything else ran still drops them.
        if not self._session.in_transaction():
            self._session.begin()

    def _write(self, conn: Connection) -> None:
        rows, hooks = self._rows, self._hooks
        self._rows, self._hooks = {}, {}
        for table, queued in rows.items():
            for columns, group in _by_columns(queued).items():
                fastsql.execute_many(conn, fastsql.insert_into(table, columns), group)
        for hook in hooks.values():
            hook(conn)


def write_buffer(session: Session) -> WriteBuffer:
    """The buffer of ``session``, made (and tied to its transaction events) on first use."""
    buffer: WriteBuffer | None = session.info.get(_KEY)
    if buffer is None:
        _listen()
        buffer = session.info[_KEY] = WriteBuffer(session)
    return buffer


@functools.cache
def _listen() -> None:
    """Tie every session's buffer to its transaction events: listeners on the Session class,
    registered once, that pass over sessions without a buffer (listeners added per session
    cost more than a consumer's whole batch of one event)."""
    event.listen(Session, "after_transaction_create", _before_savepoint)
    event.listen(Session, "before_commit", _before_commit)
    event.listen(Session, "after_soft_rollback", _after_rollback)
    event.listen(Session, "after_transaction_end", _after_transaction_end)


def flush_buffer(session: Session) -> None:
    """Write whatever ``session``'s buffer holds (nothing if it never had one)."""
    buffer: WriteBuffer | None = session.info.get(_KEY)
    if buffer is not None:
        buffer.flush()


def _by_columns(rows: list[Mapping[str, Any]]) -> dict[tuple[str, ...], list[Mapping[str, Any]]]:
    """Rows grouped by their column names (one ``executemany`` per group), in order."""
    first = tuple(rows[0])
    if all(len(row) == len(first) and tuple(row) == first for row in rows):
        return {first: rows}
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    return groups


def _before_savepoint(session: Session, transaction: SessionTransaction) -> None:
    # A savepoint's SAVEPOINT statement is emitted lazily, after this event (and after the
    # ORM flushed its own pending objects): rows queued so far are written on the enclosing
    # level's connection, outside the savepoint, so rolling the savepoint back can drop
    # exactly the rows queued inside it.
    buffer: WriteBuffer | None = session.info.get(_KEY)
    if (
        buffer is not None
        and transaction.nested
        and buffer.pending
        and transaction.parent is not None
    ):
        buffer._write(transaction.parent.connection(None))


def _before_commit(session: Session) -> None:
    buffer: WriteBuffer | None = session.info.get(_KEY)
    if buffer is not None:
        buffer.flush()  # fires for a savepoint's release too


def _after_rollback(session: Session, _previous: SessionTransaction) -> None:
    buffer: WriteBuffer | None = session.info.get(_KEY)
    if buffer is not None:
        buffer.discard()


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    buffer: WriteBuffer | None = session.info.get(_KEY)
    if buffer is not None and transaction.parent is None:
        buffer.discard()  # closed without commit or rollback (session.close())
