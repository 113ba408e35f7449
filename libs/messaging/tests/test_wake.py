"""Relays wake when a transaction that staged outbox rows commits, and only then."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from rx_contracts import examples, wrap
from rx_messaging import fastsql, wake
from rx_messaging.database import make_engine
from rx_messaging.outbox import OUTBOX, add_to_outbox, outbox_rows, queue_outbox
from rx_messaging.runner import run_relay
from rx_messaging.wake import CLOCKS, CommitSignal, announce, commit_signal
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, SQLModel

from .conftest import TABLES, make_event, pending_count

TOPIC = "referrals.events.v1"
WAIT = 10.0
"""Generous: a wake-up arrives at once or the test waits this long and fails."""


@pytest.fixture
def signal_of(db: Engine) -> Iterator[CommitSignal]:
    waiter = commit_signal(db)
    waiter.wait(0)  # PostgreSQL: LISTEN now, before anything is committed
    yield waiter
    waiter.close()


def test_a_commit_with_outbox_rows_wakes_the_relay(db: Engine, signal_of: CommitSignal) -> None:
    with Session(db) as session:
        add_to_outbox(session, make_event(), [TOPIC])
        session.commit()
    assert signal_of.wait(WAIT)


def test_rows_queued_by_a_consumer_wake_the_relay_too(db: Engine, signal_of: CommitSignal) -> None:
    with Session(db) as session:
        queue_outbox(session, make_event(), [TOPIC])
        session.commit()
    assert signal_of.wait(WAIT)


def test_a_rolled_back_transaction_wakes_nobody(db: Engine, signal_of: CommitSignal) -> None:
    with Session(db) as session:
        add_to_outbox(session, make_event(), [TOPIC])
        session.rollback()
    assert not signal_of.wait(0.3)


def test_a_released_savepoint_wakes_only_when_the_transaction_commits(
    db: Engine, signal_of: CommitSignal
) -> None:
    with Session(db) as session:
        with session.begin_nested():
            add_to_outbox(session, make_event(), [TOPIC])
        assert not signal_of.wait(0.3)  # the rows are not committed yet: nothing to publish
        session.commit()
    assert signal_of.wait(WAIT)


def test_a_commit_without_outbox_rows_wakes_nobody(db: Engine, signal_of: CommitSignal) -> None:
    with Session(db) as session:
        add_to_outbox(session, make_event(), [TOPIC])
        session.commit()
    assert signal_of.wait(WAIT)
    with Session(db) as session:  # a later transaction of the same kind of session
        session.connection()
        session.commit()
    assert not signal_of.wait(0.3)


def test_each_channel_wakes_only_its_own_waiter(db: Engine, signal_of: CommitSignal) -> None:
    clocks = commit_signal(db, CLOCKS)
    try:
        clocks.wait(0)
        with Session(db) as session:
            session.connection()
            announce(session, CLOCKS)
            session.commit()
        assert clocks.wait(WAIT)
        assert not signal_of.wait(0.3), "no outbox rows: the relay sleeps on"
        with Session(db) as session:
            add_to_outbox(session, make_event(), [TOPIC])
            announce(session, CLOCKS)
            session.commit()
        assert signal_of.wait(WAIT) and clocks.wait(WAIT), "one commit, both announced"
    finally:
        clocks.close()


def _stage_on(connection: Connection) -> None:
    """Outbox rows inserted on a bare connection, announced as the referrals API does."""
    rows = outbox_rows(make_event(), [TOPIC])
    fastsql.execute_many(connection, fastsql.insert_into(OUTBOX, tuple(rows[0])), rows)
    announce(connection)


def test_a_bare_connection_wakes_the_relay_once_its_commit_is_done(
    db: Engine, signal_of: CommitSignal
) -> None:
    with db.connect() as connection:
        connection.begin()
        _stage_on(connection)
        assert not signal_of.wait(0.3), "not committed yet: nothing to publish"
        wake.commit(connection)
    assert signal_of.wait(WAIT)
    assert pending_count(db) == 1


def test_a_bare_connection_rolled_back_wakes_nobody_then_or_later(
    db: Engine, signal_of: CommitSignal
) -> None:
    with db.connect() as connection:
        connection.begin()
        _stage_on(connection)
        connection.rollback()
        connection.begin()  # the same DBAPI connection: the announcement is not carried over
        wake.commit(connection)
    with db.connect() as connection:  # nor to its next user from the pool
        connection.begin()
        wake.commit(connection)
    assert not signal_of.wait(0.3)
    assert pending_count(db) == 0


def test_interrupt_ends_a_wait_without_a_commit(db: Engine, signal_of: CommitSignal) -> None:
    threading.Timer(0.1, signal_of.interrupt).start()
    assert signal_of.wait(WAIT) is False


def test_a_second_relay_on_one_sqlite_file_polls(engine: Engine) -> None:
    first, second = commit_signal(engine), commit_signal(engine)
    try:
        with Session(engine) as session:
            add_to_outbox(session, make_event(), [TOPIC])
            session.commit()
        assert first.wait(WAIT)
        assert not second.wait(0.2)  # no wake-ups for it; it finds the rows by polling
    finally:
        first.close()
        second.close()


def test_an_in_memory_database_polls() -> None:
    engine = make_engine("sqlite:///:memory:")
    waiter = commit_signal(engine)
    try:
        assert not waiter.wait(0.1)
    finally:
        waiter.close()


class _Recorder:
    """A publisher that remembers what it was given and stops the relay after the first."""

    def __init__(self) -> None:
        self.published: list[bytes] = []

    def publish(self, topic: str, records, timeout: float = 15) -> None:
        self.publish_many({topic: records}, timeout)

    def publish_many(self, batches, timeout: float = 15) -> None:
        self.published += [value for records in batches.values() for _k, value, _h in records]
        os.kill(os.getpid(), signal.SIGTERM)

    def close(self) -> None:
        pass


def test_the_relay_publishes_a_commit_long_before_its_fallback_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_relay sleeps on the commit signal: with an hour-long fallback poll, a commit made
    while it sleeps is still published (and SIGTERM then stops it)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'relay.db'}")
    SQLModel.metadata.create_all(engine, tables=TABLES)
    recorder = _Recorder()
    monkeypatch.setattr("rx_messaging.runner.reachable", lambda _server: True)
    monkeypatch.setattr("rx_messaging.runner.KafkaPublisher", lambda *_a, **_k: recorder)
    event = wrap(examples.referral_submitted("r-wake"), source="/tests")

    def commit_later() -> None:
        with Session(engine) as session:
            add_to_outbox(session, event, [TOPIC])
            session.commit()

    threading.Timer(0.5, commit_later).start()
    # Should the wake-up never come, stop the relay anyway: the test then fails, not hangs.
    watchdog = threading.Timer(30, os.kill, (os.getpid(), signal.SIGTERM))
    previous = signal.getsignal(signal.SIGTERM)
    watchdog.start()
    try:
        run_relay("test", engine, "127.0.0.1:9", tmp_path, fallback_poll=3600)
    finally:
        watchdog.cancel()
        signal.signal(signal.SIGTERM, previous)
    assert len(recorder.published) == 1
    cycles = REGISTRY.get_sample_value("rx_outbox_batch_records_count", {"relay": "test-relay"})
    assert cycles is not None and cycles >= 1
