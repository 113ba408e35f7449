"""One trace per referral action across every service: the span of ``POST /referrals``, the
referrals outbox row and Kafka record, routing's consumer, routing's outbox rows, the record on
the provider topic and audit's consumer that appends it to the log all share one trace id,
each hop the child of the one before. Real broker, real databases, spans caught in memory."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from audit.bootstrap import bootstrap as audit_bootstrap
from audit.config import Settings as AuditSettings
from audit.entrypoints.workers import record_event
from devstack.topics import ensure_topics
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from referrals.config import Settings as ReferralsSettings
from referrals.entrypoints.api.app import create_app
from routing.bootstrap import bootstrap as routing_bootstrap
from routing.config import Settings as RoutingSettings
from routing.entrypoints.seed import seed_demo
from routing.entrypoints.workers import handle_referral_event
from rx_contracts import decode
from rx_contracts.topics import REFERRAL_EVENTS, all_topics, provider_topic
from rx_messaging.consumer import Handler, InboxConsumer
from rx_messaging.kafka import KafkaPublisher, KafkaRecordSource
from rx_messaging.relay import OutboxRelay
from rx_messaging.telemetry import observed
from rx_telemetry import tracing
from rx_web.testing import use_dev_headers
from sqlalchemy import text

pytestmark = pytest.mark.kafka

PROVIDER_TOPIC = provider_topic("rapid-response")
REFERRAL = {
    "referrer": {"organisation": "B81001", "practitioner": "G1234567"},
    "patient": {"nhs_number": "9434765919", "postcode": "BS5 0AA"},
    "service_type": "urgent-community-response",
    "priority": "urgent",
}
GP = {"X-Organisation": "B81001", "X-Roles": "provider", "X-Practitioner": "G1234567"}

_exporter = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans of this process, kept in memory (the provider can be set once per process)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        tracing.install_provider(provider)
    _exporter.clear()
    yield _exporter
    _exporter.clear()


def wait_for_span(
    spans: InMemorySpanExporter,
    what: str,
    match: Callable[[ReadableSpan], bool],
    step: Callable[[], object],
) -> ReadableSpan:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [s for s in spans.get_finished_spans() if match(s)]
        if found:
            return found[0]
        step()
    raise AssertionError(f"timed out waiting for {what}")


def consumer(
    bootstrap: str, topics: list[str], engine: object, handler: Handler, dlq: KafkaPublisher
) -> InboxConsumer:
    """A consumer as the worker process runs it: its handler observed (span, ids, timing)."""
    group = f"it-trace-{uuid.uuid4().hex[:8]}"
    source = KafkaRecordSource(bootstrap, group, topics=topics)
    return InboxConsumer(group, source, engine, observed(handler, group), dlq)  # type: ignore[arg-type]


def test_one_trace_from_the_request_to_the_provider_topic_and_the_audit_log(
    kafka_bootstrap: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spans: InMemorySpanExporter,
) -> None:
    use_dev_headers(monkeypatch)
    ensure_topics(kafka_bootstrap, all_topics())
    publisher = KafkaPublisher(kafka_bootstrap, client_id="it-trace")
    routing = routing_bootstrap(
        RoutingSettings(database_url=f"sqlite:///{tmp_path / 'routing.db'}")
    )
    seed_demo(routing.engine)
    audit = audit_bootstrap(AuditSettings(database_url=f"sqlite:///{tmp_path / 'audit.db'}"))
    app = create_app(ReferralsSettings(database_url=f"sqlite:///{tmp_path / 'referrals.db'}"))
    consumers: list[InboxConsumer] = []
    try:
        with TestClient(app) as client:
            headers = {**GP, "Idempotency-Key": str(uuid.uuid4())}
            created = client.post("/referrals", json=REFERRAL, headers=headers)
            assert created.status_code == 201, created.text
            rid = created.json()["id"]
            assert OutboxRelay(app.state.container.engine, publisher).relay_once() >= 1
        request = next(
            s
            for s in spans.get_finished_spans()
            if s.kind is SpanKind.SERVER and s.attributes.get("http.route") == "/referrals"
        )
        trace_id = request.context.trace_id
        # The request's spans (the server span and those inside it, e.g. the endpoint's).
        in_request = {
            s.context.span_id for s in spans.get_finished_spans() if s.context.trace_id == trace_id
        }

        routing_consumer = consumer(
            kafka_bootstrap,
            [REFERRAL_EVENTS],
            routing.engine,
            partial(handle_referral_event, routing),
            publisher,
        )
        consumers.append(routing_consumer)
        routed = wait_for_span(
            spans,
            "routing to consume the submitted referral",
            lambda s: (
                s.attributes.get("rx.referral_id") == rid
                and s.attributes.get("messaging.consumer.group.name") == routing_consumer.name
            ),
            lambda: routing_consumer.consume_once(0.5),
        )
        assert routed.context.trace_id == trace_id
        assert routed.parent is not None and routed.parent.span_id in in_request

        assert OutboxRelay(routing.engine, publisher).relay_once() >= 2
        reader = KafkaRecordSource(
            kafka_bootstrap, f"it-read-{uuid.uuid4().hex[:8]}", topics=[PROVIDER_TOPIC]
        )
        try:
            delivered = []
            deadline = time.monotonic() + 30
            while not delivered and time.monotonic() < deadline:
                delivered = [r for r in reader.poll(0.5) if r.key == rid.encode()]
        finally:
            reader.close()
        assert delivered, "the routed referral reached the provider topic"
        event = decode(delivered[0].key, delivered[0].value, delivered[0].headers)
        assert event.traceparent is not None
        assert event.traceparent[3:35] == f"{trace_id:032x}", "the provider sees the same trace"
        assert event.traceparent[36:52] == f"{routed.context.span_id:016x}", "staged by routing"

        audit_consumer = consumer(
            kafka_bootstrap, [PROVIDER_TOPIC], audit.engine, record_event, publisher
        )
        consumers.append(audit_consumer)
        audited = wait_for_span(
            spans,
            "audit to append the provider's event",
            lambda s: (
                s.attributes.get("rx.event_id") == event.id
                and s.attributes.get("messaging.consumer.group.name") == audit_consumer.name
            ),
            lambda: audit_consumer.consume_once(0.5),
        )
        assert audited.context.trace_id == trace_id
        assert audited.parent is not None and audited.parent.span_id == routed.context.span_id
        with audit.engine.connect() as conn:
            entries = conn.execute(
                text("SELECT count(*) FROM audit_entry WHERE event_id = :id"), {"id": event.id}
            ).scalar()
        assert entries == 1, "the audit entry the traced span appended"
    finally:
        for c in consumers:
            c.source.close()
        publisher.close()
