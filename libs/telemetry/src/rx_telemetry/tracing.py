"""OpenTelemetry traces: one trace per referral action, from the HTTP request through every
outbox row, Kafka record and consumer it causes.

The W3C ``traceparent`` travels in the outbox row's headers (:func:`current_traceparent`,
written when the row is staged), so in the Kafka record's headers, and a consumer continues
the trace from it (:func:`consuming`); whatever that consumer stages in its own outbox
carries the consumer's span as parent, and so on to the provider topic and the audit log.
Spans are exported over OTLP only if an endpoint is set; without one they are made and
dropped (``RX_TRACING=false`` makes none)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .settings import telemetry_settings

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: trace.Tracer | None = None


def configure_tracing(process: str) -> None:
    """Install the process's tracer provider (named ``process``) with an OTLP exporter when
    an endpoint is configured, and trace outgoing httpx calls. Once per process, at start."""
    settings = telemetry_settings()
    if not settings.tracing:
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    service, _, role = process.partition("-")
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.instance.role": role})
    )
    endpoint = settings.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        traces = endpoint.rstrip("/")
        if not traces.endswith("/v1/traces"):
            traces += "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces)))
    trace.set_tracer_provider(provider)
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().instrument()


def tracer() -> trace.Tracer:
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer("rx_telemetry")
    return _tracer


def current_traceparent() -> str | None:
    """The ``traceparent`` of the span in progress, if any (a row staged inside a request or
    an event's handling continues its trace)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


@contextmanager
def consuming(
    traceparent: str | None, topic: str, group: str, attributes: dict[str, Any]
) -> Iterator[None]:
    """A consumer span for one event, child of the span that staged it (``traceparent``)."""
    parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
    with tracer().start_as_current_span(
        f"{topic} process",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": topic,
            "messaging.consumer.group.name": group,
            **attributes,
        },
    ):
        yield
