"""Without a tracer provider the trace still travels: a request continues its inbound
``traceparent`` (or starts a trace), an event continues its record's, each hop with a span id
of its own, and log lines and outbox rows made meanwhile carry it."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from rx_telemetry import tracing
from rx_telemetry.logs import JsonFormatter
from rx_telemetry.tracing import TraceContext, consuming, current_traceparent

INBOUND = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(autouse=True)
def no_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "recording", lambda: False)


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()

    @app.get("/hop")
    def hop() -> dict[str, str | None]:
        return {"traceparent": current_traceparent()}

    app.add_middleware(TraceContext)
    return TestClient(app)


def test_a_request_continues_the_inbound_trace_with_a_span_of_its_own(client) -> None:
    got = client.get("/hop", headers={"traceparent": INBOUND}).json()["traceparent"]
    assert got[:36] == INBOUND[:36]  # same trace id
    assert got[36:52] != INBOUND[36:52]  # its own span id
    assert got.endswith("-01")


@pytest.mark.parametrize("inbound", [None, "garbage", "00-" + "0" * 32 + "-b7ad6b7169203331-01"])
def test_a_request_without_a_usable_traceparent_starts_a_trace(client, inbound) -> None:
    headers = {"traceparent": inbound} if inbound else {}
    first = client.get("/hop", headers=headers).json()["traceparent"]
    second = client.get("/hop", headers=headers).json()["traceparent"]
    assert tracing._TRACEPARENT.fullmatch(first) and tracing._TRACEPARENT.fullmatch(second)
    assert first[3:35] != "0" * 32
    assert first[3:35] != second[3:35], "each request its own trace"
    assert current_traceparent() is None, "nothing left behind after the request"


def test_an_event_continues_its_records_trace_in_log_lines() -> None:
    formatter = JsonFormatter("routing", "consumer")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "applied", None, None)
    with consuming(INBOUND, "t", "g", {}):
        staged = current_traceparent()
        line = json.loads(formatter.format(record))
    assert staged is not None and staged[3:35] == INBOUND[3:35] != staged[36:52]
    assert line["trace_id"] == INBOUND[3:35]
    assert "trace_id" not in json.loads(formatter.format(record))
