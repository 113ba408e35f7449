"""``GET /metrics``, request metrics, the request's ids in log records and a trace span per
request, for a FastAPI app (:mod:`rx_telemetry`)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response
from rx_telemetry.http import RequestMetrics
from rx_telemetry.logs import RequestContext
from rx_telemetry.metrics import render
from rx_telemetry.settings import telemetry_settings
from rx_telemetry.tracing import TraceContext


def install_telemetry(app: FastAPI, service: str) -> None:
    """Serve the process's metrics at ``/metrics`` (left out of the OpenAPI document), count
    every request, let records logged while answering one carry its ids, and trace it; call
    last, so the counting middleware is outermost and sees the
    answers of authentication and rate limits too."""

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        body, content_type = render()
        return Response(body, media_type=content_type)

    settings = telemetry_settings()
    if settings.tracing:
        app.add_middleware(TraceContext)
    if settings.log_format == "json":
        app.add_middleware(RequestContext)
    if settings.metrics:
        app.add_middleware(RequestMetrics, service=service)
