"""Error answers every service shares: problem+json, the headers HTTP requires, and the
dedicated answers for missing precondition and idempotency headers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import pytest
from fastapi import FastAPI, Header, Query
from fastapi.testclient import TestClient
from rx_web.params import IsoDateTime
from rx_web.problems import install_problem_handlers
from sqlalchemy.exc import TimeoutError as PoolTimeout


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/things/{thing_id}/change")
    def change(
        thing_id: str,
        if_match: Annotated[str, Header()],
        idempotency_key: Annotated[str, Header()],
    ) -> str:
        return thing_id

    @app.post("/things")
    def add_thing() -> str:
        return "added"

    @app.get("/things")
    def things(since: Annotated[IsoDateTime | None, Query()] = None) -> str | None:
        return since.isoformat() if isinstance(since, datetime) else None

    return TestClient(app)


def test_a_wrong_method_gets_405_with_the_allow_header(client: TestClient) -> None:
    response = client.delete("/things")  # two routes share the path: both are listed
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert response.headers["content-type"] == "application/problem+json"


def test_a_change_without_if_match_is_428(client: TestClient) -> None:
    response = client.post("/things/t-1/change", headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 428
    assert "If-Match" in response.json()["detail"]


def test_a_post_without_an_idempotency_key_is_400(client: TestClient) -> None:
    response = client.post("/things/t-1/change", headers={"If-Match": '"1"'})
    assert response.status_code == 400
    assert response.json()["title"] == "Idempotency-Key required"


@pytest.mark.parametrize("bad", ["0.5", "1700000000", "yesterday", "2026-13"])
def test_date_time_parameters_accept_only_iso_8601(client: TestClient, bad: str) -> None:
    response = client.get("/things", params={"since": bad})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.since"


def test_an_iso_8601_date_time_is_read_with_its_zone(client: TestClient) -> None:
    response = client.get("/things", params={"since": "2026-11-23T14:30:00Z"})
    assert response.json() == "2026-11-23T14:30:00+00:00"


def test_a_database_that_gives_no_connection_in_time_is_503_with_retry_after() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/busy")
    def busy() -> None:
        raise PoolTimeout("no connection within the pool's timeout")

    answer = TestClient(app).get("/busy")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.headers["content-type"] == "application/problem+json"
