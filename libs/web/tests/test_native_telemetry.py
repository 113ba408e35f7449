"""FastAPI's own OpenTelemetry in the services: spans only, never metrics or logs (requests
are counted in Prometheus, logs go to stderr), so no request asks for those providers."""

from __future__ import annotations

from typing import Any

import opentelemetry._logs
import opentelemetry.metrics
from fastapi.testclient import TestClient
from rx_web.app import service_app
from rx_web.auth import AuthScheme, AuthSettings
from rx_web.settings import Environment
from sqlalchemy import create_engine


class Container:
    engine = create_engine("sqlite://")


def test_a_request_does_not_look_for_opentelemetry_metrics_or_logs(monkeypatch: Any) -> None:
    monkeypatch.setenv("RX_RATE_LIMIT_PER_SECOND", "0")
    asked: list[str] = []
    for module, name in (
        (opentelemetry.metrics, "get_meter_provider"),
        (opentelemetry._logs, "get_logger_provider"),
    ):
        original = getattr(module, name)

        def counted(*args: Any, _original: Any = original, _name: str = name) -> Any:
            asked.append(_name)
            return _original(*args)

        monkeypatch.setattr(module, name, counted)
    app = service_app(
        "things",
        "Things.",
        Container,
        auth=AuthSettings(env=Environment.DEVELOPMENT, auth=AuthScheme.DEV_HEADERS),
    )

    @app.get("/public")
    def public() -> str:
        return "hello"

    with TestClient(app) as client:
        asked.clear()  # start-up may look once
        assert client.get("/public").json() == "hello"
    assert asked == [], "FastAPI asked for an OpenTelemetry meter or logger provider"
