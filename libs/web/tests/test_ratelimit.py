"""What limit a client gets from N API processes, each holding its own buckets: N times the
configured one by default, the configured one with RX_RATE_LIMIT_PROCESSES=N."""

from __future__ import annotations

import random

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from rx_web.ratelimit import RateLimitSettings
from rx_web.security import install_security
from rx_web.settings import Environment

BURST, N = 30, 3


def api_process(monkeypatch: pytest.MonkeyPatch, processes: int | None) -> TestClient:
    """One API process as the services build theirs (limits from the environment)."""
    monkeypatch.setenv("RX_RATE_LIMIT_PER_SECOND", "0.001")  # no refill while the test runs
    monkeypatch.setenv("RX_RATE_LIMIT_BURST", str(BURST))
    if processes is None:
        monkeypatch.delenv("RX_RATE_LIMIT_PROCESSES", raising=False)
    else:
        monkeypatch.setenv("RX_RATE_LIMIT_PROCESSES", str(processes))
    app = FastAPI()

    @app.get("/things")
    def things() -> dict[str, str]:
        return {"ok": "yes"}

    install_security(app, Environment.DEVELOPMENT)
    return TestClient(app)


def allowed(clients: list[TestClient], requests: int, pick) -> int:
    """How many of ``requests`` from one client the processes let through."""
    answers = [pick(clients, n).get("/things").status_code for n in range(requests)]
    assert set(answers) <= {200, 429}
    return answers.count(200)


def round_robin(clients: list[TestClient], n: int) -> TestClient:
    return clients[n % len(clients)]


def test_by_default_each_process_counts_alone_so_n_processes_allow_n_bursts(monkeypatch) -> None:
    clients = [api_process(monkeypatch, None) for _ in range(N)]
    assert allowed(clients, 4 * BURST, round_robin) == N * BURST


def test_processes_setting_holds_a_client_to_the_configured_burst_across_them(
    monkeypatch,
) -> None:
    clients = [api_process(monkeypatch, N) for _ in range(N)]
    assert allowed(clients, 4 * BURST, round_robin) == BURST
    refused = clients[0].get("/things")
    assert refused.status_code == 429
    assert f"burst {BURST}" in refused.json()["detail"], "the client's whole limit is named"


def test_an_uneven_balancer_gives_less_never_more(monkeypatch) -> None:
    clients = [api_process(monkeypatch, N) for _ in range(N)]
    chooser = random.Random(7)
    assert allowed(clients, 4 * BURST, lambda cs, _n: chooser.choice(cs)) <= BURST


def test_each_process_enforces_its_share() -> None:
    buckets = RateLimitSettings(per_second=20, burst=100, processes=4).buckets()
    assert (buckets.rate, buckets.burst) == (5, 25)
