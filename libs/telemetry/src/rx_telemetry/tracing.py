"""OpenTelemetry traces: one trace per referral action, from the HTTP request through every
outbox row, Kafka record and consumer it causes.

The W3C ``traceparent`` travels in the outbox row's headers (:func:`current_traceparent`,
written when the row is staged), so in the Kafka record's headers, and a consumer continues
the trace from it (:func:`consuming`); whatever that consumer stages in its own outbox
carries the consumer's span as parent, and so on to the provider topic and the audit log.
Spans are made only when a tracer provider is installed: at start when an OTLP endpoint is
set, or by a test that keeps them in memory. Without one the trace still travels, cheaply: a
request continues its inbound ``traceparent`` (or starts a trace) and an event continues its
record's, each hop with a span id of its own, kept in a context variable for the outbox rows
and log lines made meanwhile (:class:`TraceContext`). ``RX_TRACING=false`` does neither."""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .settings import telemetry_settings

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: trace.Tracer | None = None
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})")
_CURRENT: ContextVar[str | None] = ContextVar("rx_traceparent", default=None)
"""The hop in progress when no spans are made: its ``traceparent``."""


RECHECK_S = 1.0
"""While no tracer provider is installed, how long :func:`recording` trusts its last answer."""
_recording = False
_checked_at = -RECHECK_S


def recording() -> bool:
    """Whether a tracer provider is installed, so spans are made (and exported). Asked on
    every request and every consumed event; while no provider is set, OpenTelemetry answers
    with an ``os.environ`` look-up each time, so a "no" is trusted for :data:`RECHECK_S`
    (:func:`install_provider` ends that at once) and a "yes" for good (a provider cannot be
    unset)."""
    global _recording, _checked_at
    if _recording:
        return True
    now = time.monotonic()
    if now - _checked_at >= RECHECK_S:
        _checked_at = now
        _recording = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return _recording


def install_provider(provider: trace.TracerProvider) -> None:
    """Make ``provider`` the process's tracer provider (once per process, as OpenTelemetry
    allows), with spans made from the next request or event on."""
    global _checked_at
    trace.set_tracer_provider(provider)
    _checked_at = -RECHECK_S


def _hop(parent: str | None) -> str:
    """A ``traceparent`` for a new hop: ``parent``'s trace (a fresh one if ``parent`` is
    missing or malformed) with a span id of its own."""
    found = _TRACEPARENT.fullmatch(parent) if parent else None
    if found and found.group(1) != "0" * 32:
        trace_id, flags = found.group(1), found.group(2)
    else:
        trace_id, flags = f"{random.getrandbits(128) or 1:032x}", "01"
    return f"00-{trace_id}-{random.getrandbits(64) or 1:016x}-{flags}"


def current_trace_id() -> str | None:
    """The trace id of the hop in progress, span or not."""
    light = _CURRENT.get()
    if light is not None:
        return light[3:35]
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class TraceContext:
    """Pure ASGI middleware: without a tracer provider, the request continues its inbound
    ``traceparent`` (or starts a trace) as a context variable, one per request; with one,
    FastAPI's own server span does that and this passes the request through."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = enter_request(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            leave_request(token)


def enter_request(scope: dict[str, Any]) -> Token[str | None] | None:
    """What :class:`TraceContext` does as a request comes in: without a tracer provider, the
    request's hop (its inbound ``traceparent`` continued, or a new trace) becomes current
    until :func:`leave_request`; with one, nothing (None)."""
    if recording():
        return None
    inbound = None
    for name, value in scope.get("headers") or ():
        if name == b"traceparent":
            inbound = value.decode("latin-1").strip().lower()
            break
    return _CURRENT.set(_hop(inbound))


def leave_request(token: Token[str | None] | None) -> None:
    if token is not None:
        _CURRENT.reset(token)


def configure_tracing(process: str) -> None:
    """Install the process's tracer provider (named ``process``) with an OTLP exporter and
    trace outgoing httpx calls, when an endpoint is configured. Once per process, at start."""
    settings = telemetry_settings()
    endpoint = settings.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not settings.tracing or not endpoint:
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    service, _, role = process.partition("-")
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.instance.role": role})
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    traces = endpoint.rstrip("/")
    if not traces.endswith("/v1/traces"):
        traces += "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces)))
    install_provider(provider)
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().instrument()


def tracer() -> trace.Tracer:
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer("rx_telemetry")
    return _tracer


def current_traceparent() -> str | None:
    """The ``traceparent`` of the hop in progress, if any (a row staged inside a request or
    an event's handling continues its trace)."""
    light = _CURRENT.get()
    if light is not None:
        return light
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


@contextmanager
def consuming(
    traceparent: str | None, topic: str, group: str, attributes: dict[str, Any]
) -> Iterator[None]:
    """A consumer span for one event, child of the span that staged it (``traceparent``);
    without a tracer provider, just the hop's ``traceparent``."""
    if not recording():
        token = _CURRENT.set(_hop(traceparent))
        try:
            yield
        finally:
            _CURRENT.reset(token)
        return
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
