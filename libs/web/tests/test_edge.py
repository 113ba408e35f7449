"""A service's edge layer (rx_web.metrics.Edge) does what the four middlewares it replaces do,
in the same order: count the request, carry its ids in log records, continue its trace, and
put the security headers on its answer."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.testclient import TestClient
from rx_telemetry.http import RequestMetrics
from rx_telemetry.logs import RequestContext, _request_ids
from rx_telemetry.metrics import render
from rx_telemetry.scrape import parse, total
from rx_telemetry.tracing import TraceContext, current_traceparent
from rx_web.headers import SecureHeaders, SecurityHeaders
from rx_web.metrics import Edge

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def four_layers(app: FastAPI, service: str, hsts: bool) -> None:
    app.add_middleware(SecurityHeaders, hsts=hsts)
    app.add_middleware(TraceContext)
    app.add_middleware(RequestContext)
    app.add_middleware(RequestMetrics, service=service)


def one_layer(app: FastAPI, service: str, hsts: bool) -> None:
    app.add_middleware(
        Edge, service=service, log_ids=True, trace=True, headers=SecureHeaders(hsts=hsts)
    )


def answers(install: Any, service: str, hsts: bool = False) -> dict[str, Any]:
    app = FastAPI()
    seen: dict[str, Any] = {}

    @app.get("/referrals/{referral_id}")
    def read(referral_id: str) -> JSONResponse:
        seen["traceparent"] = current_traceparent()
        from rx_telemetry import logs

        seen["ids"] = _request_ids(logs._REQUEST.get() or {})
        return JSONResponse({"id": referral_id}, headers={"Cache-Control": "max-age=5"})

    @app.get("/page")
    def page() -> HTMLResponse:
        return HTMLResponse("<p>hi</p>")

    @app.get("/fails")
    def fails() -> None:
        raise RuntimeError("the route fails")

    install(app, service, hsts)
    before = parse(render()[0].decode())
    with TestClient(app, raise_server_exceptions=False) as client:
        json_answer = client.get(
            "/referrals/r-1", headers={"traceparent": PARENT, "X-Correlation-Id": "c-1"}
        )
        html_answer = client.get("/page")
        failed = client.get("/fails")
    after = parse(render()[0].decode())

    def grew(**labels: str) -> float:
        name = "rx_http_requests_total"
        return total(after, name, service=service, **labels) - total(
            before, name, service=service, **labels
        )

    return {
        "json": [(k, v) for k, v in json_answer.headers.items() if k != "date"],
        "html": [(k, v) for k, v in html_answer.headers.items() if k != "date"],
        "failed": failed.status_code,
        "counted": (grew(route="/referrals/{referral_id}", status="200"), grew(status="500")),
        "trace": seen["traceparent"][:36],
        "ids": seen["ids"],
    }


@pytest.mark.parametrize("hsts", [False, True])
def test_one_layer_answers_and_records_as_the_four_did(hsts: bool) -> None:
    logging.getLogger().setLevel(logging.INFO)
    four = answers(four_layers, "edge-four", hsts)
    one = answers(one_layer, "edge-one", hsts)
    assert one == four
    headers = dict(one["json"])
    assert headers["cache-control"] == "max-age=5", "a route's own Cache-Control is kept"
    assert headers["x-content-type-options"] == "nosniff"
    assert ("strict-transport-security" in headers) is hsts
    assert "script-src" in dict(one["html"])["content-security-policy"]
    assert one["counted"] == (1, 1) and one["failed"] == 500
    assert one["trace"] == PARENT[:36], "the inbound trace continued"
    assert one["ids"] == {"correlation_id": "c-1", "trace_id": PARENT[3:35], "referral_id": "r-1"}
