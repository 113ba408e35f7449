"""``GET /metrics``, request metrics, the request's ids in log records, a trace span per
request and (for a service) its security headers, for a FastAPI app (:mod:`rx_telemetry`)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from rx_telemetry import logs, tracing
from rx_telemetry.http import RequestMetrics
from rx_telemetry.metrics import render
from rx_telemetry.settings import telemetry_settings
from starlette.types import ASGIApp, Message, Receive, Send

from .headers import SecureHeaders


def install_telemetry(app: FastAPI, service: str, headers: SecureHeaders | None = None) -> None:
    """Serve the process's metrics at ``/metrics`` (left out of the OpenAPI document), count
    every request, let records logged while answering one carry its ids, trace it and, with
    ``headers``, add the security headers to its answer; call last, so this layer is
    outermost and sees the answers of authentication and rate limits too."""

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        body, content_type = render()
        return Response(body, media_type=content_type)

    settings = telemetry_settings()
    if settings.metrics or settings.log_format == "json" or settings.tracing or headers:
        app.add_middleware(
            Edge,
            service=service if settings.metrics else None,
            log_ids=settings.log_format == "json",
            trace=settings.tracing,
            headers=headers,
        )


class Edge:
    """One pure ASGI layer for what every request gets on its way in and out, outermost first
    as the separate middlewares do it: its count and latency
    (:class:`rx_telemetry.http.RequestMetrics`), its ids in log records
    (:class:`rx_telemetry.logs.RequestContext`), its trace hop
    (:class:`rx_telemetry.tracing.TraceContext`) and the security headers on its answer
    (:class:`rx_web.headers.SecurityHeaders`). One coroutine and one send wrapper a request
    instead of four of each: every layer costs each request a call and each message a hop."""

    def __init__(
        self,
        app: ASGIApp,
        service: str | None,
        log_ids: bool,
        trace: bool,
        headers: SecureHeaders | None = None,
    ) -> None:
        self.app, self.log_ids, self.trace, self.headers = app, log_ids, trace, headers
        self.metrics = RequestMetrics(app, service) if service is not None else None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        secure = self.headers

        async def edge_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                if secure is not None:
                    secure(message)
                status = message["status"]
            await send(message)

        request: Any = logs.enter_request(scope) if self.log_ids else None
        try:
            hop = tracing.enter_request(scope) if self.trace else None
            try:
                await self.app(scope, receive, edge_send)
            finally:
                tracing.leave_request(hop)
        finally:
            if request is not None:
                logs.leave_request(request)
            if self.metrics is not None:
                self.metrics.record(scope, status, started)
