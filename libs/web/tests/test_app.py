"""The service app: its sync routes run in at most ``worker_threads`` threads at once, and
requests beyond that wait their turn rather than fail."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient
from rx_web.app import service_app
from rx_web.auth import AuthScheme, AuthSettings
from rx_web.settings import Environment
from sqlalchemy import create_engine


class Container:
    engine = create_engine("sqlite://")


def running_at_once(worker_threads: int | None, requests: int = 8) -> tuple[int, list[int]]:
    """The most route calls that ran at the same time, and every answer's status."""
    app = service_app(
        "things",
        "Things.",
        Container,
        auth=AuthSettings(env=Environment.DEVELOPMENT, auth=AuthScheme.DEV_HEADERS),
        worker_threads=worker_threads,
    )
    lock, now, most = threading.Lock(), [0], [0]

    @app.get("/slow")
    def slow() -> str:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.05)
        with lock:
            now[0] -= 1
        return "done"

    with TestClient(app) as client, ThreadPoolExecutor(requests) as pool:
        answers = list(pool.map(lambda _: client.get("/slow").status_code, range(requests)))
    return most[0], answers


def test_sync_routes_run_in_at_most_the_given_threads_and_every_request_is_answered() -> None:
    most, answers = running_at_once(worker_threads=2)
    assert answers == [200] * 8
    assert most == 2


def test_without_a_bound_routes_run_side_by_side() -> None:
    most, answers = running_at_once(worker_threads=None)
    assert answers == [200] * 8
    assert most > 2
