"""The shared metrics machinery: request series by route template, scrape-time probes, and
the worker's /metrics, /health and /ready."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from rx_telemetry.http import RequestMetrics
from rx_telemetry.metrics import PROBES, add_probe, render
from rx_telemetry.ops import OpsServer
from rx_telemetry.scrape import parse, samples, total


def test_requests_are_counted_by_route_template_not_raw_path() -> None:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    app.add_middleware(RequestMetrics, service="probe-test")
    before = parse(render()[0].decode())
    with TestClient(app) as client:
        for n in range(3):
            assert client.get(f"/things/{n}").status_code == 200
        assert client.get("/nowhere").status_code == 404
    after = parse(render()[0].decode())

    def grew(**labels: str) -> float:
        name = "rx_http_requests_total"
        return total(after, name, service="probe-test", **labels) - total(
            before, name, service="probe-test", **labels
        )

    assert grew(route="/things/{thing_id}", status="200", method="GET") == 3
    assert grew(route="unmatched", status="404") == 1
    assert not [s for s in samples(after, "rx_http_requests_total") if "/things/1" in str(s)]


def test_probes_are_read_at_scrape_time_and_a_failing_one_is_left_out() -> None:
    backlog = {"n": 1.0}
    add_probe("rx_test_backlog", "test", ["relay"], lambda: {("a",): backlog["n"]}, key="a")
    add_probe("rx_test_backlog", "test", ["relay"], lambda: 1 / 0, key="b")  # type: ignore[arg-type,return-value]
    try:
        assert total(parse(render()[0].decode()), "rx_test_backlog", relay="a") == 1
        backlog["n"] = 7
        series = parse(render()[0].decode())
        assert [(dict(ls), v) for ls, v in samples(series, "rx_test_backlog")] == [
            ({"relay": "a"}, 7)
        ]
    finally:
        PROBES.remove("a")
        PROBES.remove("b")


def test_a_worker_is_ready_only_when_every_check_passes() -> None:
    broker_up = {"up": True}

    def broker() -> None:
        if not broker_up["up"]:
            raise ConnectionError("no broker answers at 127.0.0.1:9")

    server = OpsServer("test-worker", {"database": lambda: None, "broker": broker}).start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        assert httpx.get(f"{url}/health").json() == {"status": "ok", "process": "test-worker"}
        assert httpx.get(f"{url}/ready").status_code == 200
        broker_up["up"] = False
        answer = httpx.get(f"{url}/ready")
        assert answer.status_code == 503
        assert answer.json()["broker"] == "no broker answers at 127.0.0.1:9"
        assert answer.json()["database"] == "ok"
        metrics = httpx.get(f"{url}/metrics")
        assert metrics.status_code == 200 and "rx_http_requests" in metrics.text
    finally:
        server.stop()


def test_stopping_a_worker_closes_its_ops_endpoints() -> None:
    server = OpsServer("test-worker", {}).start()
    url = f"http://127.0.0.1:{server.port}"
    assert httpx.get(f"{url}/health").status_code == 200
    server.stop()  # the idle loop waits up to an hour between its own stop checks
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=2)
    assert not server._thread.is_alive()
