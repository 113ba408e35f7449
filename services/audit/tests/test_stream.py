"""The live stream over a real HTTP server: entries arrive as they are recorded, filters
apply, and a client that reconnects with Last-Event-ID misses nothing and sees nothing twice."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from audit.bootstrap import bootstrap
from audit.config import Settings
from rx_contracts import examples, wrap
from sqlalchemy.engine import Engine

from .conftest import OPS, record_all, submitted


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"stream_poll_s": 0.05, "stream_heartbeat_s": 0.5})


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    """The test's own connection to the database the live API reads."""
    engine = bootstrap(settings).engine
    yield engine
    engine.dispose()


class Events:
    """Reads server-sent events from an open stream, with a bound on the wait."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()
        self.comments: list[str] = []

    def next(self, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        event: dict[str, Any] = {}
        for line in self.lines:
            if line.startswith(":"):
                self.comments.append(line)
            elif line:
                name, _, value = line.partition(":")
                event[name] = value.removeprefix(" ")
            elif "data" in event:
                event["data"] = json.loads(event["data"])
                return event
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"no event within {timeout}s")

    def comment(self, timeout: float = 10) -> str:
        """The next comment line (heartbeats are comments)."""
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if line.startswith(":"):
                self.comments.append(line)
                return line
            assert time.monotonic() < deadline, f"no comment within {timeout}s"
        raise AssertionError("the stream ended")

    def take(self, count: int) -> list[dict[str, Any]]:
        return [self.next() for _ in range(count)]


def open_stream(
    client: httpx.Client, base: str, headers: dict[str, str] | None = None, **params: Any
) -> Any:
    return client.stream(
        "GET", f"{base}/audit/stream", params=params, headers={**OPS, **(headers or {})}
    )


def test_a_reconnect_with_last_event_id_resumes_without_gaps_or_repeats(
    live_api: str, engine: Engine
) -> None:
    record_all(engine, [submitted(n) for n in range(1, 4)])
    with httpx.Client(timeout=10) as client:
        with open_stream(client, live_api, after=0) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            first = Events(response).take(3)
        assert [e["id"] for e in first] == ["1", "2", "3"]
        assert {e["event"] for e in first} == {"entry"}
        assert first[0]["data"]["event_id"] == "e-1" and first[0]["data"]["sequence"] == 1

        # While the client is away, more is recorded (in two batches).
        record_all(engine, [submitted(4), submitted(5)])
        record_all(engine, [submitted(6)])

        with open_stream(client, live_api, headers={"Last-Event-ID": first[-1]["id"]}) as again:
            events = Events(again)
            resumed = events.take(3)
            record_all(engine, [submitted(7)])  # and live, while connected
            resumed.append(events.next())

    assert [e["id"] for e in resumed] == ["4", "5", "6", "7"]
    assert [e["data"]["event_id"] for e in first + resumed] == [f"e-{n}" for n in range(1, 8)]


def test_without_a_position_only_new_entries_are_streamed_and_idle_streams_send_comments(
    live_api: str, engine: Engine
) -> None:
    record_all(engine, [submitted(1)])
    with httpx.Client(timeout=10) as client, open_stream(client, live_api) as response:
        events = Events(response)
        assert events.comment().startswith(": stream of audit entries after 1")
        assert events.comment().startswith(": keep-alive"), "idle: a heartbeat"
        record_all(engine, [submitted(2)])
        event = events.next()
        assert event["id"] == "2", "the entry recorded before connecting is not replayed"


def test_filters_apply_to_the_stream(live_api: str, engine: Engine) -> None:
    routed = wrap(examples.referral_routed("r-2", assigned_org="RXB02"), source="/s/routing")
    record_all(engine, [submitted(1), submitted(2), routed, submitted(3)])
    with httpx.Client(timeout=10) as client:
        with open_stream(client, live_api, after=0, referral_id="r-2") as response:
            by_referral = Events(response).take(2)
        with open_stream(client, live_api, after=0, organisation="RXB02") as response:
            by_org = Events(response).take(2)
        with open_stream(
            client, live_api, after=0, type="rx.referrals.ReferralSubmitted.v1"
        ) as response:
            by_type = Events(response).take(3)
        bad = client.get(f"{live_api}/audit/stream", headers={**OPS, "Last-Event-ID": "yesterday"})

    assert [e["id"] for e in by_referral] == ["2", "3"]
    assert [e["id"] for e in by_org] == ["2", "3"], "r-2's submission too: RXB02 holds r-2"
    assert [e["data"]["referral_id"] for e in by_type] == ["r-1", "r-2", "r-3"]
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "Last-Event-ID"
