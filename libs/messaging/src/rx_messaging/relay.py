"""The outbox relay: publishes committed outbox rows to Kafka, then marks them sent.

At-least-once: a relay that dies between publishing and marking republishes on restart, and
consumers drop the duplicate by event id. While Kafka is down rows simply wait."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.engine import Connection, Engine

from .database import is_postgres
from .ports import Publisher, WireRecord
from .tables import OutboxMessage

log = logging.getLogger(__name__)


OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]


class OutboxRelay:
    """Moves outbox rows to the broker in id order, so one referral's events keep their order."""

    def __init__(self, engine: Engine, publisher: Publisher, batch_size: int = 500) -> None:
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

    def relay_once(self) -> int:
        """Publish one batch; return how many rows were published (0 when idle).

        PostgreSQL: rows are locked with SKIP LOCKED while publishing, so extra relays share
        the work. SQLite: one relay per database; rows are read, published, then marked in a
        second short transaction so the API is never blocked behind a slow broker."""
        with self.engine.connect() as conn:
            if is_postgres(self.engine):
                rows = list(conn.execute(self._pending.with_for_update(skip_locked=True)))
                self._publish(rows)
                self._mark_sent(conn, rows)
                return len(rows)
            rows = list(conn.execute(self._pending))
            conn.rollback()
        if rows:
            self._publish(rows)
            with self.engine.connect() as conn:
                self._mark_sent(conn, rows)
        return len(rows)

    def _publish(self, rows: Sequence[Any]) -> None:
        by_topic: dict[str, list[WireRecord]] = defaultdict(list)
        for row in rows:
            headers = [(name, text.encode()) for name, text in row.headers]
            by_topic[row.topic].append((row.key, row.value, headers))
        for topic, records in by_topic.items():
            self.publisher.publish(topic, records)

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
