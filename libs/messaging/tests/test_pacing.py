"""Pacing: under a stream of work a worker runs fewer, larger cycles; work after a quiet spell
is handled at once; a stop request ends a pacing wait at once."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from rx_contracts import encode
from rx_messaging.database import make_engine
from rx_messaging.outbox import add_to_outbox
from rx_messaging.runner import run_relay
from rx_messaging.worker import PACE_MAX_MS, Cycle, Pacing, pace_setting, run_loop
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from .conftest import TABLES, make_event

TOPIC = "referrals.events.v1"
WAIT = 30.0
"""Generous: what should happen at once happens long before; a test never waits this long
unless it is failing."""


class _Publisher:
    """Remembers each produce batch (one ``publish_many`` per relay cycle)."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []

    def publish(self, topic: str, records: Any, timeout: float = 15) -> None:
        self.publish_many({topic: records}, timeout)

    def publish_many(self, batches: Any, timeout: float = 15) -> None:
        self.batches.append([value for records in batches.values() for _k, value, _h in records])

    def records(self) -> list[bytes]:
        return [value for batch in self.batches for value in batch]

    def close(self) -> None:
        pass


def _relay_with(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pace: float,
    drive: Callable[[Engine, _Publisher], None],
) -> _Publisher:
    """Run ``run_relay`` (paced by ``pace``) in this thread while ``drive`` commits in another;
    the relay is stopped by SIGTERM once ``drive`` returns, as a service's relay is."""
    engine = make_engine(f"sqlite:///{tmp_path / 'relay.db'}")
    SQLModel.metadata.create_all(engine, tables=TABLES)
    publisher = _Publisher()
    monkeypatch.setattr("rx_messaging.runner.reachable", lambda _server: True)
    monkeypatch.setattr("rx_messaging.runner.KafkaPublisher", lambda *_a, **_k: publisher)

    def driver() -> None:
        try:
            drive(engine, publisher)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=driver, daemon=True).start()
    try:
        run_relay("test", engine, "127.0.0.1:9", tmp_path, fallback_poll=3600, pace=pace)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return publisher


def _commit(engine: Engine, referral: str) -> bytes:
    event = make_event(referral)
    with Session(engine) as session:
        add_to_outbox(session, event, [TOPIC])
        session.commit()
    return encode(event).value


def _until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


def test_a_paced_relay_publishes_a_stream_of_commits_in_fewer_batches_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[bytes] = []

    def stream(engine: Engine, publisher: _Publisher) -> None:
        for n in range(20):  # one commit at a time, as API requests come
            sent.append(_commit(engine, f"r-{n % 3}"))
            time.sleep(0.01)
        _until("every commit published", lambda: len(publisher.records()) == len(sent))

    publisher = _relay_with(tmp_path, monkeypatch, 0.5, stream)
    assert len(publisher.batches) <= 10, f"20 commits in {len(publisher.batches)} batches"
    assert publisher.records() == sent  # one at a time, in commit order


def test_a_lone_commit_after_a_quiet_spell_leaves_at_once_and_a_stop_ends_the_pacing_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paced by an hour: the first commit is published at once (the relay was idle); a second
    one right after waits for the pacing, and SIGTERM stops the relay during that wait."""
    unsent: list[int] = []

    def two_commits(engine: Engine, publisher: _Publisher) -> None:
        _commit(engine, "r-1")
        _until("the lone commit published", lambda: len(publisher.batches) == 1)
        _commit(engine, "r-2")
        time.sleep(0.3)  # the relay is woken, and waits for its pacing
        with engine.connect() as conn:
            query = text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            unsent.append(conn.execute(query).scalar_one())

    publisher = _relay_with(tmp_path, monkeypatch, 3600, two_commits)
    assert len(publisher.records()) == 1
    assert unsent == [1]  # kept in the outbox for the next cycle (or the next relay)


def test_a_step_that_found_nothing_is_not_paced() -> None:
    stop = threading.Event()
    calls: list[int] = []

    def step() -> bool:
        calls.append(1)
        if len(calls) == 5:
            stop.set()
        return False

    worker = threading.Thread(target=run_loop, args=("test", step, stop), kwargs={"pace": 3600})
    worker.start()
    worker.join(WAIT)
    assert not worker.is_alive() and len(calls) == 5


@pytest.mark.parametrize("cycle", [True, Cycle.MORE, Cycle.DONE])
def test_a_stop_request_ends_a_pacing_wait_at_once(cycle: bool | Cycle) -> None:
    stop = threading.Event()
    calls: list[int] = []

    def step() -> bool | Cycle:
        calls.append(1)
        return cycle

    worker = threading.Thread(
        target=run_loop,
        args=("test", step, stop),
        kwargs={"pace": 3600, "idle_wait": lambda _timeout: None},
    )
    worker.start()
    _until("the first step", lambda: len(calls) == 1)
    stop.set()
    worker.join(WAIT)
    assert not worker.is_alive()
    assert len(calls) == 1  # the second would have waited an hour


class _NoWaiting(threading.Event):
    def wait(self, timeout: float | None = None) -> bool:
        raise AssertionError(f"waited {timeout} s")


def test_work_after_a_quiet_spell_longer_than_the_pacing_is_not_delayed() -> None:
    now = [100.0]
    pacing = Pacing(0.02, _NoWaiting(), clock=lambda: now[0])
    pacing.started()
    pacing.ended(worked=True)
    now[0] += 0.5  # the next work comes long after the last cycle
    assert pacing.wait() is False


def test_the_next_cycle_after_work_waits_for_the_rest_of_the_interval() -> None:
    now = [100.0]
    waited: list[float] = []

    class Recorded(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waited.append(timeout or 0)
            return False

    pacing = Pacing(0.02, Recorded(), clock=lambda: now[0])
    pacing.started()
    now[0] += 0.005  # the cycle took 5 ms
    pacing.ended(worked=True)
    assert pacing.wait() is True
    assert waited == [pytest.approx(0.015)]
    pacing.started()
    pacing.ended(worked=False)
    assert pacing.wait() is False and len(waited) == 1


class _Settings(BaseModel):
    relay_pace_ms: float = pace_setting(20, "relay")


@pytest.mark.parametrize("value", [-1, PACE_MAX_MS + 1, "fast"])
def test_a_pacing_setting_out_of_range_is_refused_naming_it(value: object) -> None:
    with pytest.raises(ValidationError, match="relay_pace_ms"):
        _Settings.model_validate({"relay_pace_ms": value})


def test_a_negative_pacing_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="pacing interval"):
        Pacing(-0.01, threading.Event())
