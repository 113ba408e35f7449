"""Log lines are JSON carrying the ids of the request or event being handled."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from rx_contracts import examples, wrap
from rx_telemetry.logs import JsonFormatter, RequestContext, bind, unbind

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("referrals", "consumer"))
    log = logging.getLogger("rx.test.logs")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        log.removeHandler(handler)


def written(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_logged_while_applying_an_event_carries_its_ids(lines: io.StringIO) -> None:
    envelope = wrap(
        examples.referral_submitted("ref-1"),
        source="/tests",
        correlation_id="corr-1",
        traceparent=TRACEPARENT,
    )
    token = bind(
        event_id=envelope.id,
        referral_id=envelope.subject,
        correlation_id=envelope.correlationid,
        trace_id=TRACEPARENT[3:35],
    )
    try:
        logging.getLogger("rx.test.logs").warning("could not route %s", "ref-1")
    finally:
        unbind(token)
    logging.getLogger("rx.test.logs").info("idle")

    applying, idle = written(lines)
    assert applying["message"] == "could not route ref-1"
    assert applying["level"] == "WARNING" and applying["service"] == "referrals"
    assert applying["role"] == "consumer"
    assert applying["event_id"] == envelope.id and applying["referral_id"] == "ref-1"
    assert applying["correlation_id"] == "corr-1"
    assert applying["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert applying["time"].endswith("+00:00")
    assert "event_id" not in idle and "referral_id" not in idle, "ids do not leak past the event"


def test_a_record_logged_while_answering_a_request_carries_its_ids(lines: io.StringIO) -> None:
    app = FastAPI()

    @app.get("/referrals/{referral_id}")
    def read(referral_id: str) -> dict[str, str]:
        logging.getLogger("rx.test.logs").info("reading")
        return {"id": referral_id}

    app.add_middleware(RequestContext)
    with TestClient(app) as client:
        headers = {"X-Correlation-Id": "corr-2", "traceparent": TRACEPARENT}
        assert client.get("/referrals/ref-2", headers=headers).status_code == 200

    (entry,) = written(lines)
    assert entry["referral_id"] == "ref-2" and entry["correlation_id"] == "corr-2"
    assert entry["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_an_exception_is_one_json_line_with_its_traceback(lines: io.StringIO) -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        logging.getLogger("rx.test.logs").exception("failed")
    (entry,) = written(lines)
    assert "Traceback" in entry["exception"] and "ValueError: broken" in entry["exception"]
