"""The outbox relay: publishes committed outbox rows to Kafka, then marks them sent.

At-least-once: a relay that dies between publishing and marking republishes on restart, and
consumers drop the duplicate by event id. While Kafka is down rows simply wait."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select, update

from .database import is_postgres
from .ports import Publisher, WireRecord
from .tables import OutboxMessage

log = logging.getLogger(__name__)


class OutboxRelay:
    """Moves outbox rows to the broker in id order, so one referral's events keep their order."""

    def __init__(self, engine: Engine, publisher: Publisher, batch_size: int = 500) -> None:
        self.engine = engine
        self.publisher = publisher
        self.batch_size = batch_size

    def relay_once(self) -> int:
        """Publish one batch; return how many rows were published (0 when idle).

        PostgreSQL: rows are locked with SKIP LOCKED while publishing, so extra relays share
        the work. SQLite: one relay per database; rows are read, published, then marked in a
        second short transaction so the API is never blocked behind a slow broker."""
        query = (
            select(OutboxMessage)
            .where(col(OutboxMessage.sent_at).is_(None))
            .order_by(col(OutboxMessage.id))
            .limit(self.batch_size)
        )
        with Session(self.engine) as session:
            if is_postgres(self.engine):
                rows = list(session.exec(query.with_for_update(skip_locked=True)))
                self._publish(rows)
                self._mark_sent(session, rows)
                return len(rows)
            rows = list(session.exec(query))
        if rows:
            self._publish(rows)
            with Session(self.engine) as session:
                self._mark_sent(session, rows)
        return len(rows)

    def _publish(self, rows: list[OutboxMessage]) -> None:
        by_topic: dict[str, list[WireRecord]] = defaultdict(list)
        for row in rows:
            headers = [(name, text.encode()) for name, text in row.headers]
            by_topic[row.topic].append((row.key, row.value, headers))
        for topic, records in by_topic.items():
            self.publisher.publish(topic, records)

    @staticmethod
    def _mark_sent(session: Session, rows: list[OutboxMessage]) -> None:
        if not rows:
            return
        ids = [row.id for row in rows]
        session.exec(  # type: ignore[call-overload]
            update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(ids))
            .values(sent_at=datetime.now(UTC))
        )
        session.commit()
        log.debug("relayed %d outbox rows", len(rows))
