"""What a relay or consumer tells operators: the probes read at scrape time (outbox backlog,
consumer lag, connection pool), readiness checks, and the cheap per-batch and per-event
counters the runner wraps around the relay and the consumer."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from rx_contracts import Envelope
from rx_telemetry import logs
from rx_telemetry.metrics import (
    CONSUMER_BATCH_RECORDS,
    CONSUMER_EVENT_SECONDS,
    CONSUMER_EVENTS,
    DEAD_LETTERS,
    Sample,
    add_probe,
)
from rx_telemetry.ops import Check
from rx_telemetry.settings import telemetry_settings
from rx_telemetry.tracing import consuming
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from .consumer import BatchResult, Handler
from .ports import Publisher, WireRecord
from .records import Record
from .tables import OutboxMessage


def database_check(engine: Engine) -> Check:
    def check() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    return check


def broker_check(bootstrap_servers: str, reachable: Callable[[str], bool]) -> Check:
    def check() -> None:
        if not any(reachable(server) for server in bootstrap_servers.split(",")):
            raise ConnectionError(f"no broker answers at {bootstrap_servers}")

    return check


def add_outbox_probes(engine: Engine, relay: str) -> None:
    """``rx_outbox_backlog{relay}`` and ``rx_outbox_oldest_age_seconds{relay}``: rows not yet
    published, and how long the oldest has waited (0 when none wait). One indexed query a
    scrape, shared by both families."""
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    query = select(func.count(), func.min(table.c.created_at)).where(table.c.sent_at.is_(None))
    last = [float("-inf"), 0.0, 0.0]  # when read, backlog, oldest age

    def read_both() -> tuple[float, float]:
        # Both families are collected in the same scrape, one after the other: query once.
        now = time.monotonic()
        if now - last[0] >= 1.0:
            with Session(engine) as session:
                count, oldest = session.connection().execute(query).one()
            age = 0.0
            if oldest is not None:
                oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
                age = max((datetime.now(UTC) - oldest).total_seconds(), 0.0)
            last[:] = [now, float(count), age]
        return last[1], last[2]

    add_probe(
        "rx_outbox_backlog",
        "Outbox rows written but not yet published to Kafka.",
        ["relay"],
        lambda: {(relay,): read_both()[0]},
        key=relay,
    )
    add_probe(
        "rx_outbox_oldest_age_seconds",
        "Seconds the oldest unpublished outbox row has waited (0 when none wait).",
        ["relay"],
        lambda: {(relay,): read_both()[1]},
        key=relay,
    )


def add_lag_probe(group: str, lag: Callable[[], dict[tuple[str, int], int]]) -> None:
    """``rx_consumer_lag{group, topic, partition}``: records on the broker the group has not
    yet committed, per assigned partition."""

    def read() -> Sample:
        return {(group, topic, str(partition)): n for (topic, partition), n in lag().items()}

    add_probe(
        "rx_consumer_lag",
        "Records on a partition the consumer group has not yet committed.",
        ["group", "topic", "partition"],
        read,
        key=group,
    )


def observed(handler: Handler, group: str) -> Handler:
    """``handler`` in a span continuing the event's trace (:mod:`rx_telemetry.tracing`), with
    the event's ids in the records it logs (:mod:`rx_telemetry.logs`) and its time in
    ``rx_consumer_event_duration_seconds{group, event_type}``."""
    settings = telemetry_settings()
    if not (settings.metrics or settings.tracing or settings.log_format == "json"):
        return handler
    timing, tracing = settings.metrics, settings.tracing
    children: dict[str, Any] = {}

    def apply(session: Session, envelope: Envelope, record: Record) -> None:
        token = logs.bind(
            event_id=envelope.id,
            referral_id=envelope.subject,
            correlation_id=envelope.correlationid,
            trace_id=logs.trace_id_of(envelope.traceparent),
        )
        started = time.perf_counter()
        try:
            if tracing:
                with consuming(
                    envelope.traceparent,
                    record.topic,
                    group,
                    {
                        "rx.event_id": envelope.id,
                        "rx.event_type": envelope.type,
                        "rx.referral_id": envelope.subject or "",
                        "messaging.kafka.destination.partition": record.partition,
                        "messaging.kafka.offset": record.offset,
                    },
                ):
                    handler(session, envelope, record)
            else:
                handler(session, envelope, record)
        finally:
            logs.unbind(token)
            if timing:
                child = children.get(envelope.type)
                if child is None:
                    child = children[envelope.type] = CONSUMER_EVENT_SECONDS.labels(
                        group, envelope.type
                    )
                child.observe(time.perf_counter() - started)

    return apply


def count_batch(group: str) -> Callable[[BatchResult], None]:
    """Adds a batch's outcomes to ``rx_consumer_events{group, outcome}`` and its size to
    ``rx_consumer_batch_records{group}``."""
    applied, duplicates, dead = (
        CONSUMER_EVENTS.labels(group, outcome)
        for outcome in ("applied", "duplicate", "dead_lettered")
    )
    sizes = CONSUMER_BATCH_RECORDS.labels(group)

    def count(result: BatchResult) -> None:
        settled = result.applied + result.duplicates + result.dead_lettered
        if settled:
            sizes.observe(settled)
        if result.applied:
            applied.inc(result.applied)
        if result.duplicates:
            duplicates.inc(result.duplicates)
        if result.dead_lettered:
            dead.inc(result.dead_lettered)

    return count


class CountedDeadLetters:
    """The dead-letter publisher, counting in ``rx_dead_letters{group, topic}`` what it
    parked (after the broker acknowledged it)."""

    def __init__(self, publisher: Publisher, group: str) -> None:
        self.publisher, self.group = publisher, group

    def publish(self, topic: str, records: Sequence[WireRecord], timeout: float = 15) -> None:
        self.publisher.publish(topic, records, timeout)
        source = topic.removesuffix(".dlq")
        DEAD_LETTERS.labels(self.group, source).inc(len(records))

    def close(self) -> None:
        self.publisher.close()
