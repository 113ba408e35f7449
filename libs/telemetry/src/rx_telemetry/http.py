"""Counting and timing HTTP requests by route template (``/referrals/{referral_id}``, never
the raw path, so the series stay few)."""

from __future__ import annotations

import time
from typing import Any

from .metrics import HTTP_LATENCY, HTTP_REQUESTS

ASGIApp = Any


class RequestMetrics:
    """Pure ASGI middleware: one counter increment and one histogram observation a request.
    Installed outermost, so requests refused by authentication or rate limits count too (as
    route ``unmatched``, since they never reached the router)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app, self.service = app, service
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.record(scope, status, started)

    def record(self, scope: dict[str, Any], status: int, started: float) -> None:
        """Count the request answered with ``status`` and time it since ``started``
        (``time.perf_counter()``), under its route's template."""
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        if scope.get("root_path") and template != "unmatched":
            template = scope["root_path"] + template
        counter, latency = self._children(scope["method"], template, status)
        counter.inc()
        latency.observe(time.perf_counter() - started)

    def _children(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """The labelled children, cached: ``labels()`` itself costs more than the update."""
        key = (method, route, status)
        found = self._series.get(key)
        if found is None:
            found = (
                HTTP_REQUESTS.labels(self.service, method, route, str(status)),
                HTTP_LATENCY.labels(self.service, method, route),
            )
            self._series[key] = found
        return found
