"""Sharing one PostgreSQL outbox between several relays without reordering a key's events.

The key space is cut into ``SLOTS`` slots (a hash of the message key). Each slot is owned by
at most one relay at a time, through a session-level advisory lock held on a connection of
the relay's own (:class:`SlotLeases`); a relay publishes only the rows of the slots it owns,
in outbox order. All of one referral's events share its key, so they leave through one relay,
in order.

Relays share the slots evenly: each also holds a membership lock, counts the members, and
keeps at most its share (``ceil(SLOTS / members)``), handing back the surplus between
batches and taking free slots while under its share. A relay that dies, or whose connection
is cut, loses its session and with it its locks: the others take its slots at their next
look, within ``REFRESH_S`` plus one idle wait.

A relay whose lease connection fails mid-publish may overlap a successor for that one batch:
both publish the same unsent rows in outbox order, so the first copy of every event still
arrives in order and consumers drop the second by event id."""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable

from sqlalchemy import ColumnElement, func, text
from sqlalchemy.engine import Connection, Engine

from .database import end_session, unpooled

log = logging.getLogger(__name__)

SLOTS = 16
"""Slots of the key space; more relays than slots leave the extra ones idle (standbys)."""
SLOT_LOCKS = 0x52580010
"""Advisory lock namespace (first key) of the slot locks; the second key is the slot.
Advisory locks are per database and every service has its own, so constants suffice."""
MEMBER_LOCKS = 0x52580011
"""Namespace of the membership locks; the second key is the relay's backend pid."""
REFRESH_S = 1.0
"""How often a relay counts the relays and takes or hands back slots."""

_HELD = text(
    "SELECT objid::int AS key FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND objsubid = 2 AND classid = CAST(:space AS oid)"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def slot_of(key: bytes) -> int:
    """The slot of a message key (what :func:`slot_column` computes in SQL)."""
    return hashlib.sha256(key).digest()[0] % SLOTS


def slot_column(key: ColumnElement[bytes]) -> ColumnElement[int]:
    """The slot of ``key`` as PostgreSQL computes it: the first byte of its SHA-256."""
    return func.get_byte(func.sha256(key), 0) % SLOTS


class SlotLeases:
    """The slots this relay owns, and the connection that holds them (also the one the relay
    reads and marks its rows on, so it never reads without holding its locks)."""

    def __init__(
        self, engine: Engine, name: str = "relay", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.engine, self.name, self.clock = unpooled(engine), name, clock
        self.owned: frozenset[int] = frozenset()
        self._connection: Connection | None = None
        self._next_look = 0.0

    def connection(self) -> Connection:
        """The lease connection (made, and membership taken, on first use)."""
        if self._connection is None:
            connection = self.engine.connect()
            try:
                connection.execute(
                    text("SELECT pg_advisory_lock(:space, pg_backend_pid())"),
                    {"space": MEMBER_LOCKS},
                )
                connection.commit()
            except Exception:
                end_session(connection)
                raise
            self._connection = connection
        return self._connection

    def refresh(self, force: bool = False) -> frozenset[int]:
        """Take or hand back slots to hold this relay's share (at most every ``REFRESH_S``
        unless ``force``); returns the slots owned. A failed connection loses them all and
        raises (the next call connects again)."""
        if not force and self.clock() < self._next_look:
            return self.owned
        self._next_look = self.clock() + REFRESH_S
        try:
            self._rebalance(self.connection())
        except Exception:
            self.lost()
            raise
        return self.owned

    def _rebalance(self, connection: Connection) -> None:
        members = len(self._held(connection, MEMBER_LOCKS)) or 1
        share = math.ceil(SLOTS / members)
        owned = set(self.owned)
        for slot in sorted(owned, reverse=True)[: max(len(owned) - share, 0)]:
            connection.execute(
                text("SELECT pg_advisory_unlock(:space, :slot)"),
                {"space": SLOT_LOCKS, "slot": slot},
            )
            owned.discard(slot)
        if len(owned) < share:
            free = sorted(set(range(SLOTS)) - self._held(connection, SLOT_LOCKS))
            for slot in free:
                if len(owned) >= share:
                    break
                taken = connection.execute(
                    text("SELECT pg_try_advisory_lock(:space, :slot)"),
                    {"space": SLOT_LOCKS, "slot": slot},
                ).scalar_one()
                if taken:
                    owned.add(slot)
        connection.commit()
        if owned != self.owned:
            log.info("%s owns outbox slots %s of %d", self.name, sorted(owned), SLOTS)
        self.owned = frozenset(owned)

    @staticmethod
    def _held(connection: Connection, space: int) -> set[int]:
        return {row.key for row in connection.execute(_HELD, {"space": space})}

    def lost(self) -> None:
        """The connection failed: its session (and every lock) is gone or going."""
        if self._connection is not None:
            log.warning("%s lost its outbox slots %s", self.name, sorted(self.owned))
            end_session(self._connection)
        self._connection = None
        self.owned = frozenset()
        self._next_look = 0.0

    def close(self) -> None:
        """Hand every slot back at once (closing the session releases its locks)."""
        if self._connection is not None:
            end_session(self._connection)
        self._connection = None
        self.owned = frozenset()
