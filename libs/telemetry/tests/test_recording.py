"""Whether spans are made: a tracer provider installed through ``install_provider`` is used
from the next request or event on; one installed another way is noticed within
``RECHECK_S``; and while there is none, OpenTelemetry is not asked on every call."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from rx_telemetry import tracing


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """OpenTelemetry's global provider, and the clock, as this test sets them."""
    state: dict[str, Any] = {"provider": trace.ProxyTracerProvider(), "asked": 0}

    def get_tracer_provider() -> trace.TracerProvider:
        state["asked"] += 1
        return state["provider"]

    def set_tracer_provider(provider: trace.TracerProvider) -> None:
        state["provider"] = provider

    clock = Clock()
    monkeypatch.setattr(tracing.trace, "get_tracer_provider", get_tracer_provider)
    monkeypatch.setattr(tracing.trace, "set_tracer_provider", set_tracer_provider)
    monkeypatch.setattr(tracing, "time", clock)
    monkeypatch.setattr(tracing, "_recording", False)
    monkeypatch.setattr(tracing, "_checked_at", -tracing.RECHECK_S)
    state["clock"] = clock
    return state


def test_without_a_provider_the_answer_is_kept_and_an_installed_one_counts_at_once(
    world: dict[str, Any],
) -> None:
    assert [tracing.recording() for _ in range(100)] == [False] * 100
    assert world["asked"] == 1

    tracing.install_provider(TracerProvider())
    assert tracing.recording() is True


def test_a_provider_installed_another_way_is_noticed_within_the_recheck(
    world: dict[str, Any],
) -> None:
    assert tracing.recording() is False
    world["provider"] = TracerProvider()  # e.g. by an auto-instrumentation agent
    world["clock"].now += tracing.RECHECK_S / 2
    assert tracing.recording() is False
    world["clock"].now += tracing.RECHECK_S / 2
    assert tracing.recording() is True
    asked = world["asked"]
    assert all(tracing.recording() for _ in range(10))
    assert world["asked"] == asked  # a provider cannot be unset: no more questions
