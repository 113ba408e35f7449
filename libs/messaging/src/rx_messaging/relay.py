"""The outbox relay: publishes committed outbox rows to Kafka, then marks them sent.

At-least-once: a relay that dies between publishing and marking republishes on restart, and
consumers drop the duplicate by event id. While Kafka is down rows simply wait."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.engine import Connection, Engine

from . import fastsql
from .database import is_postgres
from .ports import BatchPublisher, WireRecord
from .slots import SlotLeases, slot_column
from .tables import OutboxMessage

log = logging.getLogger(__name__)


OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
_MARK_ONE = (
    update(OUTBOX).where(OUTBOX.c.id == bindparam("row_id")).values(sent_at=bindparam("sent_at"))
)


class OutboxRelay:
    """Moves outbox rows to the broker in id order, so one referral's events keep their order."""

    def __init__(
        self, engine: Engine, publisher: BatchPublisher, batch_size: int = 500, name: str = "relay"
    ) -> None:
        self.engine = engine
        self.publisher = publisher
        self.batch_size = batch_size
        # Plain columns, no ORM objects: the relay only copies rows to the wire.
        self._pending = (
            select(OUTBOX.c.id, OUTBOX.c.topic, OUTBOX.c.key, OUTBOX.c.value, OUTBOX.c.headers)
            .where(OUTBOX.c.sent_at.is_(None))
            .order_by(OUTBOX.c.id)
            .limit(batch_size)
        )
        self.leases = SlotLeases(engine, name) if is_postgres(engine) else None
        self._of_slots = self._pending.where(
            slot_column(OUTBOX.c.key).in_(bindparam("slots", expanding=True))
        )

    def relay_once(self) -> int:
        """Publish one batch; return how many rows were published (0 when idle).

        PostgreSQL: any number of relays share the outbox by key slots (``rx_messaging.slots``);
        this one publishes the rows of the slots it owns, read and marked on the connection
        that holds them. SQLite: one relay per database; rows are read, published, then marked
        in a second short transaction so the API is never blocked behind a slow broker."""
        if self.leases is not None:
            return self._relay_owned(self.leases)
        # One fixed read and one fixed update per cycle, and a cycle per commit at low rates:
        # both go straight to the driver (rx_messaging.fastsql), skipping SQLAlchemy's
        # per-call work. The read is a single statement outside any transaction: it sees
        # every committed row and holds no write lock, so writers do not wait for it.
        with self.engine.connect() as conn:
            rows = [
                (row_id, topic, key, value, json.loads(headers))
                for row_id, topic, key, value, headers in fastsql.execute(
                    conn, self._pending, {}
                ).fetchall()
            ]
        if rows:
            self._publish(rows)
            sent_at = datetime.now(UTC)
            with self.engine.begin() as conn:
                fastsql.execute_many(
                    conn, _MARK_ONE, [{"row_id": row[0], "sent_at": sent_at} for row in rows]
                )
            log.debug("relayed %d outbox rows", len(rows))
        return len(rows)

    def _relay_owned(self, leases: SlotLeases) -> int:
        slots = leases.refresh()
        if not slots:
            return 0  # a standby: every slot is owned by another relay
        conn = leases.connection()
        try:
            rows = list(conn.execute(self._of_slots, {"slots": sorted(slots)}))
            conn.rollback()
        except Exception:
            leases.lost()
            raise
        self._publish(rows)
        try:
            self._mark_sent(conn, rows)
        except Exception:
            leases.lost()
            raise
        return len(rows)

    def close(self) -> None:
        """Hand back this relay's slots (PostgreSQL) so the others take them over at once."""
        if self.leases is not None:
            self.leases.close()

    def _publish(self, rows: Sequence[Any]) -> None:
        """Publish ``(id, topic, key, value, headers)`` rows in one send, flushed once."""
        by_topic: dict[str, list[WireRecord]] = defaultdict(list)
        for _id, topic, key, value, stored_headers in rows:
            headers = [(name, text.encode()) for name, text in stored_headers]
            by_topic[topic].append((key, value, headers))
        self.publisher.publish_many(by_topic)

    @staticmethod
    def _mark_sent(conn: Connection, rows: Sequence[Any]) -> None:
        if not rows:
            return
        conn.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id.in_([row[0] for row in rows]))
            .values(sent_at=datetime.now(UTC))
        )
        conn.commit()
        log.debug("relayed %d outbox rows", len(rows))
