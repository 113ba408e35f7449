"""What the layers between the network and a route do, as a caller sees it, on both faces of
the service: the body size limit (413), the per-client rate limit (429, probes exempt), the
identity (401), the security headers on every answer, the trace carried into the route, the
platform's problem+json turned into an OperationOutcome under /fhir/R4 (and only there), and
the count of requests in flight the transactions are placed by."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from referrals.config import Settings
from referrals.entrypoints.api.app import create_app
from rx_telemetry.tracing import current_traceparent

from .fhir_support import BASE, GP

SECURITY = [
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "cross-origin-resource-policy",
    "cache-control",
    "content-security-policy",
]
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
LIMIT = 500


def names(response: Response) -> list[str]:
    """The answer's header names in the order sent (the date aside)."""
    return [name for name, _ in response.headers.multi_items() if name != "date"]


def seen_by_routes(app: FastAPI) -> dict[str, Any]:
    """Routes added for the test: each reports what it saw of the layers around it."""
    seen: dict[str, Any] = {}

    @app.get("/test-layers/in-flight")
    async def in_flight() -> dict[str, Any]:
        seen["traceparent"] = current_traceparent()
        return {"count": app.state.in_flight.count}

    return seen


@pytest.fixture
def limited(monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[TestClient]:
    """The service with a burst of 3 requests a client and bodies up to LIMIT bytes."""
    monkeypatch.setenv("RX_RATE_LIMIT_PER_SECOND", "0.001")  # no refill while the test runs
    monkeypatch.setenv("RX_RATE_LIMIT_BURST", "3")
    with TestClient(create_app(Settings(database_url=db_url, max_body_bytes=LIMIT))) as c:
        yield c


def test_a_body_over_the_limit_is_413_problem_json_on_the_json_api(client: TestClient) -> None:
    declared = client.post("/referrals", content=b"x" * 2_000_000, headers=GP)
    streamed = client.post("/referrals", content=iter([b"x" * 600_000] * 4), headers=GP)
    for response in (declared, streamed):
        assert response.status_code == 413
        assert names(response) == ["content-length", "content-type", *SECURITY]
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json() == {
            "type": "about:blank",
            "title": "Request too large",
            "status": 413,
            "detail": "the request body is over the limit of 1000000 bytes",
            "instance": "/referrals",
        }
    assert client.app.state.in_flight.count == 0  # type: ignore[attr-defined]


def test_a_body_over_the_limit_is_an_operation_outcome_on_the_fhir_face(
    client: TestClient,
) -> None:
    for content in (b"x" * 2_000_000, iter([b"x" * 600_000] * 4)):
        headers = {**GP, "Idempotency-Key": "k-1", "Content-Type": "application/fhir+json"}
        response = client.post(f"{BASE}/", content=content, headers=headers)
        assert response.status_code == 413
        assert names(response) == [*SECURITY, "content-type", "content-length"]
        assert response.headers["content-type"] == "application/fhir+json"
        assert response.headers["content-length"] == str(len(response.content))
        assert response.json() == {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "too-costly",
                    "diagnostics": "the request body is over the limit of 1000000 bytes",
                }
            ],
        }


def test_a_client_over_its_rate_is_429_with_retry_after_on_either_face_and_probes_are_not_counted(
    limited: TestClient,
) -> None:
    for _ in range(5):
        assert limited.get("/health").status_code == 200
    assert limited.get("/referrals?view=sent", headers=GP).status_code == 200
    assert limited.get(f"{BASE}/metadata", headers=GP).status_code == 200
    assert limited.get("/test-layers/none", headers=GP).status_code == 404  # counted too
    plain = limited.get("/referrals?view=sent", headers=GP)
    fhir = limited.get(f"{BASE}/Task", headers=GP)
    other = limited.get("/referrals?view=sent", headers={**GP, "X-Organisation": "RXA01"})
    assert other.status_code == 200, "counted per client"

    assert plain.status_code == 429
    assert names(plain) == ["content-length", "content-type", "retry-after", *SECURITY]
    assert plain.headers["retry-after"] == "1000"
    assert plain.json() == {
        "type": "about:blank",
        "title": "Too many requests",
        "status": 429,
        "detail": "over 0.001 requests/s (burst 3); retry after 1000 s",
        "instance": "/referrals",
    }
    assert fhir.status_code == 429
    assert names(fhir) == ["retry-after", *SECURITY, "content-type", "content-length"]
    assert fhir.json()["issue"] == [
        {
            "severity": "error",
            "code": "throttled",
            "diagnostics": "over 0.001 requests/s (burst 3); retry after 1000 s",
        }
    ]
    assert limited.app.state.in_flight.count == 0  # type: ignore[attr-defined]


def test_the_limits_answer_before_the_identity_is_checked_and_401_comes_from_the_route(
    limited: TestClient,
) -> None:
    """Authentication only names the caller: a refused identity is counted against its
    address, and a body over the limit is 413 whoever sends it."""
    too_big = limited.post("/referrals", content=b"x" * (LIMIT + 1), headers={})
    assert too_big.status_code == 413
    unknown = limited.get("/referrals?view=sent", headers={})
    assert unknown.status_code == 401
    assert unknown.json()["detail"] == "send X-Organisation (your ODS code) and X-Roles"
    fhir = limited.get(f"{BASE}/Task", headers={})
    assert fhir.status_code == 401
    assert names(fhir) == [*SECURITY, "content-type", "content-length"]
    assert fhir.json()["issue"][0]["code"] == "login"
    assert limited.get("/referrals?view=sent", headers={}).status_code == 429, "per address"
    assert limited.get("/referrals?view=sent", headers=GP).status_code == 200


def test_the_routes_see_their_own_request_in_flight_and_the_trace_continued(db_url: str) -> None:
    app = create_app(Settings(database_url=db_url))
    seen = seen_by_routes(app)
    with TestClient(app) as client:
        answer = client.get("/test-layers/in-flight", headers={**GP, "traceparent": PARENT})
        assert answer.json() == {"count": 1}
        assert seen["traceparent"][:36] == PARENT[:36]
        assert names(answer) == ["content-length", "content-type", *SECURITY]
        for path in ("/referrals/r-1", f"{BASE}/Task/t-1", "/nowhere", f"{BASE}/nowhere"):
            assert client.get(path, headers=GP).status_code == 404
        assert client.post(f"{BASE}/Task", content=b"{", headers=GP).status_code in (400, 405)
        assert app.state.in_flight.count == 0


def test_a_route_that_fails_is_a_plain_500_and_is_counted_back_down(db_url: str) -> None:
    app = create_app(Settings(database_url=db_url))

    @app.get("/test-layers/fails")
    async def fails() -> None:
        raise RuntimeError("the route fails")

    with TestClient(app, raise_server_exceptions=False) as client:
        failed = client.get("/test-layers/fails", headers=GP)
        assert (failed.status_code, failed.text) == (500, "Internal Server Error")
        assert failed.headers["content-type"].startswith("text/plain")
        assert app.state.in_flight.count == 0


def test_the_json_api_s_problems_stay_problem_json_and_fhir_answers_pass_untouched(
    client: TestClient,
) -> None:
    plain = client.get("/referrals/r-1", headers=GP)
    assert plain.headers["content-type"] == "application/problem+json"
    metadata = client.get(f"{BASE}/metadata", headers=GP)
    assert metadata.status_code == 200
    assert metadata.json()["resourceType"] == "CapabilityStatement"
    assert names(metadata) == ["content-length", "content-type", *SECURITY]


def test_a_wrong_method_is_405_naming_the_methods_of_the_path_on_either_face(
    client: TestClient,
) -> None:
    """RFC 9110: a 405 carries Allow, every method served at the path (rx_web.problems)."""
    plain = client.delete("/referrals", headers=GP)
    assert plain.status_code == 405
    assert plain.headers["allow"] == "GET, HEAD, POST"
    assert plain.headers["content-type"] == "application/problem+json"
    fhir = client.delete(f"{BASE}/metadata", headers=GP)
    assert fhir.status_code == 405
    assert fhir.headers["allow"] == "GET, HEAD"
    assert fhir.json()["issue"][0]["code"] == "not-supported"
