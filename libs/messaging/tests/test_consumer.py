"""The inbox consumer against the in-memory broker: effects once, poison parked, failures
retried without losing or skipping anything."""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import ClassVar

import pytest
from rx_contracts import encode
from rx_messaging.buffer import write_buffer
from rx_messaging.consumer import InboxConsumer, PermanentError, TransientError
from rx_messaging.database import make_engine
from rx_messaging.fake import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
from rx_messaging.records import PublishError
from rx_messaging.runner import COMMIT_INTERVAL_ENV, commit_interval_seconds
from rx_messaging.tables import InboxMessage
from sqlmodel import Session, SQLModel, func, select

from .conftest import TABLES, Effect, make_event

EFFECTS = Effect.__table__  # type: ignore[attr-defined]

TOPIC = "referrals.events.v1"


def effects(engine) -> list[str]:
    with Session(engine) as s:
        return [e.referral_id for e in s.exec(select(Effect).order_by(Effect.id))]


def write_effect(session, envelope, record) -> None:
    session.add(Effect(event_id=envelope.id, referral_id=envelope.subject))


@pytest.fixture
def broker() -> InMemoryBroker:
    b = InMemoryBroker()
    b.create_topic(TOPIC, 3)
    b.create_topic(TOPIC + ".dlq", 1)
    return b


def consumer(broker, engine, handler=write_effect, group="g") -> InboxConsumer:
    source = InMemoryRecordSource(broker, group, topics=[TOPIC])
    return InboxConsumer(group, source, engine, handler, InMemoryPublisher(broker))


def publish(broker, *envelopes) -> None:
    for env in envelopes:
        broker.append(TOPIC, *encode(env))


def test_each_event_is_applied_once_even_when_delivered_twice(broker, engine) -> None:
    first, second = make_event("r-1"), make_event("r-2")
    publish(broker, first, second, first)
    result = consumer(broker, engine).consume_once()
    assert (result.applied, result.duplicates) == (2, 1)
    assert sorted(effects(engine)) == ["r-1", "r-2"]


def test_a_restarted_consumer_resumes_after_committed_offsets(broker, engine) -> None:
    publish(broker, make_event("r-1"))
    consumer(broker, engine).consume_once()
    publish(broker, make_event("r-2"))
    result = consumer(broker, engine).consume_once()  # a new process, same group
    assert result.applied == 1
    assert sorted(effects(engine)) == ["r-1", "r-2"]


def test_redelivery_after_a_crash_before_the_offset_commit_is_a_no_op(broker, engine) -> None:
    publish(broker, make_event("r-1"))
    consumer(broker, engine).consume_once()
    broker.committed.clear()  # as if the process died after its DB commit, before the offset commit
    result = consumer(broker, engine).consume_once()
    assert (result.applied, result.duplicates) == (0, 1)
    assert effects(engine) == ["r-1"]


def test_poison_goes_to_the_dlq_with_the_error_and_the_consumer_moves_on(broker, engine) -> None:
    broker.append(TOPIC, b"r-x", b"not an event", [("ce_specversion", b"1.0")])
    publish(broker, make_event("r-1"))
    result = consumer(broker, engine).consume_once()
    assert (result.applied, result.dead_lettered) == (1, 1)
    [parked] = broker.records(TOPIC + ".dlq")
    headers = dict(parked.headers)
    assert parked.value == b"not an event"
    assert b"not JSON" in headers["dlq_error"]
    assert headers["dlq_source"].startswith(TOPIC.encode())


def test_a_permanent_handler_error_dead_letters_without_partial_effects(broker, engine) -> None:
    def half_then_fail(session, envelope, record) -> None:
        write_effect(session, envelope, record)
        raise PermanentError("referral in an impossible state")

    publish(broker, make_event("r-1"))
    result = consumer(broker, engine, half_then_fail).consume_once()
    assert result.dead_lettered == 1
    assert effects(engine) == []
    assert b"impossible state" in dict(broker.records(TOPIC + ".dlq")[0].headers)["dlq_error"]


def test_a_transient_failure_is_retried_and_later_events_wait_their_turn(broker, engine) -> None:
    key = "same-referral"
    first, second = make_event(key), make_event(key)
    publish(broker, first, second)
    calls = {"n": 0}

    def flaky(session, envelope, record) -> None:
        calls["n"] += 1
        if calls["n"] <= 2:  # fails on the batch's fast path and again record by record
            raise OSError("database briefly unavailable")
        write_effect(session, envelope, record)

    c = consumer(broker, engine, flaky)
    with pytest.raises(TransientError):
        c.step()
    assert effects(engine) == []  # the second event did not overtake the first
    assert c.step() is True
    with Session(engine) as s:
        applied = list(s.exec(select(Effect.event_id).order_by(Effect.id)))
    assert applied == [first.id, second.id]


def test_inbox_rows_are_per_consumer_group(broker, engine) -> None:
    publish(broker, make_event("r-1"))
    consumer(broker, engine, group="routing").consume_once()
    consumer(broker, engine, group="audit").consume_once()
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Effect)).one() == 2


def test_a_poison_event_in_the_middle_of_a_batch_leaves_the_others_applied(broker, engine) -> None:
    good_before, bad, good_after = make_event("r-1"), make_event("r-bad"), make_event("r-3")

    def refuse_bad(session, envelope, record) -> None:
        write_effect(session, envelope, record)  # written, then undone by its savepoint
        if envelope.subject == "r-bad":
            raise PermanentError("cannot apply r-bad")

    publish(broker, good_before, bad, good_after)
    result = consumer(broker, engine, refuse_bad).consume_once()
    assert (result.applied, result.dead_lettered) == (2, 1)
    assert sorted(effects(engine)) == ["r-1", "r-3"]
    [parked] = broker.records(TOPIC + ".dlq")
    assert parked.key == b"r-bad"


def test_one_event_on_two_topics_in_one_batch_is_applied_once(broker, engine) -> None:
    broker.create_topic("provider.acute.v1", 1)
    event = make_event("r-1")
    publish(broker, event)
    broker.append("provider.acute.v1", *encode(event))
    source = InMemoryRecordSource(broker, "g", topics=[TOPIC, "provider.acute.v1"])
    c = InboxConsumer("g", source, engine, write_effect, InMemoryPublisher(broker))
    result = c.consume_once()
    assert (result.applied, result.duplicates) == (1, 1)
    assert effects(engine) == ["r-1"]


def test_a_batch_that_cannot_be_parked_is_read_again_and_nothing_is_skipped(broker, engine) -> None:
    broker.append(TOPIC, b"r-x", b"not an event", [("ce_specversion", b"1.0")])
    publish(broker, make_event("r-1"))
    c = consumer(broker, engine)
    broker.down = True  # the DLQ publish fails after the batch's effects were committed
    with pytest.raises(PublishError):
        c.consume_once()
    assert broker.committed == {}  # no offset moved
    broker.down = False
    result = c.consume_once()  # same consumer: it was rewound, not left past the batch
    assert (result.applied, result.duplicates, result.dead_lettered) == (0, 1, 1)
    assert effects(engine) == ["r-1"]
    assert len(broker.records(TOPIC + ".dlq")) == 1


def test_a_large_backlog_is_applied_in_few_transactions(broker, engine) -> None:
    from sqlalchemy import event

    commits = {"n": 0}
    event.listen(engine, "commit", lambda _conn: commits.__setitem__("n", commits["n"] + 1))
    publish(broker, *(make_event(f"r-{i}") for i in range(150)))
    result = consumer(broker, engine).consume_once()
    assert result.applied == 150
    assert len(effects(engine)) == 150
    assert commits["n"] == 1


def test_a_failure_on_the_fast_path_is_applied_record_by_record(broker, engine) -> None:
    events = [make_event(f"r-{i}") for i in range(5)]
    publish(broker, *events)
    calls: dict[str, int] = {}

    def fails_once_for_r2(session, envelope, record) -> None:
        calls[envelope.subject] = calls.get(envelope.subject, 0) + 1
        if envelope.subject == "r-2" and calls["r-2"] == 1:
            raise OSError("a passing fault")
        write_effect(session, envelope, record)

    result = consumer(broker, engine, fails_once_for_r2).consume_once()
    assert (result.applied, result.retry) == (5, False)
    assert sorted(effects(engine)) == [f"r-{i}" for i in range(5)]  # nothing twice


def queue_effect(session, envelope, record) -> None:
    """A handler that queues its row in the write buffer instead of inserting it."""
    write_buffer(session).add(EFFECTS, {"event_id": envelope.id, "referral_id": envelope.subject})


class CountingCursor(sqlite3.Cursor):
    """Counts the driver calls that insert rows, per table."""

    calls: ClassVar[Counter[tuple[str, str]]] = Counter()

    def execute(self, sql, *args):  # type: ignore[no-untyped-def]
        self._count("execute", sql)
        return super().execute(sql, *args)

    def executemany(self, sql, *args):  # type: ignore[no-untyped-def]
        self._count("executemany", sql)
        return super().executemany(sql, *args)

    def _count(self, how: str, sql: str) -> None:
        if sql.startswith("INSERT INTO"):
            self.calls[(how, sql.split()[2])] += 1


class CountingConnection(sqlite3.Connection):
    def cursor(self, factory=CountingCursor):  # type: ignore[no-untyped-def,override]
        return super().cursor(factory)


def test_the_fast_path_writes_each_table_once_per_batch(broker, tmp_path) -> None:
    path = tmp_path / "counted.db"
    engine = make_engine(
        f"sqlite:///{path}",
        creator=lambda: sqlite3.connect(path, factory=CountingConnection, check_same_thread=False),
    )
    SQLModel.metadata.create_all(engine, tables=TABLES)
    CountingCursor.calls.clear()
    publish(broker, *(make_event(f"r-{i}") for i in range(150)))

    result = consumer(broker, engine, queue_effect).consume_once()

    assert result.applied == 150
    assert len(effects(engine)) == 150
    assert dict(CountingCursor.calls) == {
        ("executemany", "test_effect"): 1,
        ("executemany", "inbox"): 1,
    }


def test_a_record_failing_on_the_careful_path_leaves_none_of_its_queued_rows(
    broker, engine
) -> None:
    def queue_then_refuse_bad(session, envelope, record) -> None:
        queue_effect(session, envelope, record)  # queued, then dropped with its savepoint
        if envelope.subject == "r-bad":
            raise PermanentError("cannot apply r-bad")

    publish(broker, make_event("r-1"), make_event("r-bad"), make_event("r-3"))
    result = consumer(broker, engine, queue_then_refuse_bad).consume_once()

    assert (result.applied, result.dead_lettered) == (2, 1)
    assert sorted(effects(engine)) == ["r-1", "r-3"]
    with Session(engine) as s:
        inbox = s.exec(select(func.count()).select_from(InboxMessage)).one()
    assert inbox == 2


def test_a_record_whose_queued_rows_cannot_be_written_is_retried_alone(broker, engine) -> None:
    """The queued rows are written only at the end of the batch; when they fail there, the
    batch is applied again record by record, so only the record they belong to waits."""
    first = make_event("r-1")
    clash = first.model_copy(update={"id": "clash", "subject": "r-1"})

    def queue_with_fixed_id(session, envelope, record) -> None:
        # Both records' rows take id 1: the second cannot be stored.
        write_buffer(session).add(
            EFFECTS, {"id": 1, "event_id": envelope.id, "referral_id": envelope.subject}
        )

    publish(broker, first, clash)  # same key: same partition, in this order
    result = consumer(broker, engine, queue_with_fixed_id).consume_once()

    assert (result.applied, result.retry) == (1, True)
    with Session(engine) as s:
        assert list(s.exec(select(Effect.event_id))) == [first.id]
        assert list(s.exec(select(InboxMessage.event_id))) == [first.id]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def paced(broker, engine, clock, interval=1.0) -> tuple[InboxConsumer, InMemoryRecordSource]:
    source = InMemoryRecordSource(broker, "g", topics=[TOPIC])
    c = InboxConsumer(
        "g",
        source,
        engine,
        write_effect,
        InMemoryPublisher(broker),
        commit_interval=interval,
        clock=clock,
    )
    return c, source


def committed(broker) -> int:
    """How many records of TOPIC the group's committed offsets cover."""
    return sum(offset for (group, _, _), offset in broker.committed.items() if group == "g")


def test_offsets_wait_for_the_interval_not_each_batch(broker, engine) -> None:
    clock = Clock()
    c, _ = paced(broker, engine, clock)
    for n in range(3):
        publish(broker, make_event(f"r-{n}"))
        assert c.consume_once().applied == 1
        assert committed(broker) == (3 if n == 2 else 0)  # the third came 1 s after the first
        clock.now += 0.5
    publish(broker, make_event("r-3"))
    c.consume_once()
    assert committed(broker) == 3  # a new interval began after the commit


def test_an_idle_poll_commits_what_was_settled(broker, engine) -> None:
    c, _ = paced(broker, engine, Clock())
    publish(broker, make_event("r-1"), make_event("r-2"))
    c.consume_once()
    assert committed(broker) == 0
    assert c.consume_once().applied == 0  # nothing new
    assert committed(broker) == 2


def test_stopping_commits_what_was_settled(broker, engine) -> None:
    c, _ = paced(broker, engine, Clock())
    publish(broker, make_event("r-1"))
    c.consume_once()
    c.close()
    assert committed(broker) == 1
    result = consumer(broker, engine).consume_once()  # the next process starts after it
    assert (result.applied, result.duplicates) == (0, 0)


def test_a_rebalance_commits_the_revoked_partitions_and_forgets_them(broker, engine) -> None:
    c, source = paced(broker, engine, Clock())
    publish(broker, make_event("r-1"), make_event("r-2"))
    c.consume_once()
    source.rebalance()
    assert committed(broker) == 2
    broker.committed.clear()  # the new owner's business now
    c.close()
    assert broker.committed == {}  # nothing of the revoked partitions committed again


def test_a_crash_before_the_commit_redelivers_as_no_ops(broker, engine) -> None:
    c, _ = paced(broker, engine, Clock())
    publish(broker, make_event("r-1"))
    c.consume_once()  # settled, offsets not yet committed; the process dies here
    result = consumer(broker, engine).consume_once()
    assert (result.applied, result.duplicates) == (0, 1)
    assert effects(engine) == ["r-1"]


def test_no_interval_commits_every_batch(broker, engine) -> None:
    c, _ = paced(broker, engine, Clock(), interval=0)
    publish(broker, make_event("r-1"))
    c.consume_once()
    assert committed(broker) == 1


@pytest.mark.parametrize("text", ["soon", "-1", "60001"])
def test_a_commit_interval_that_is_not_a_sensible_number_is_refused(monkeypatch, text) -> None:
    monkeypatch.setenv(COMMIT_INTERVAL_ENV, text)
    with pytest.raises(ValueError, match=COMMIT_INTERVAL_ENV):
        commit_interval_seconds()


def test_the_commit_interval_is_a_second_unless_set(monkeypatch) -> None:
    monkeypatch.delenv(COMMIT_INTERVAL_ENV, raising=False)
    assert commit_interval_seconds() == 1.0
    monkeypatch.setenv(COMMIT_INTERVAL_ENV, "250")
    assert commit_interval_seconds() == pytest.approx(0.25)
    monkeypatch.setenv(COMMIT_INTERVAL_ENV, "0")
    assert commit_interval_seconds() == 0


def _lock_effects_at_once(engine) -> None:
    """Take the effects table for writing from another connection without waiting: fails if
    any transaction (the consumer's included) still holds it or SQLite's write lock."""
    if engine.dialect.name == "sqlite":
        other = sqlite3.connect(engine.url.database, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()
        return
    with engine.connect() as other:
        other.exec_driver_sql("LOCK TABLE test_effect IN ACCESS EXCLUSIVE MODE NOWAIT")
        other.rollback()


def test_between_batches_the_consumer_holds_no_transaction_and_stopping_frees_its_connection(
    broker, db
) -> None:
    c = consumer(broker, db)
    for n in range(3):
        publish(broker, make_event(f"r-{n}"))
        assert c.consume_once().applied == 1
        _lock_effects_at_once(db)  # committed, nothing left open on the kept connection
    assert effects(db) == ["r-0", "r-1", "r-2"]
    c.close()
    assert db.pool.checkedout() == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_connection_the_database_ended_costs_one_retried_batch_and_nothing_is_lost(
    broker, db
) -> None:
    c = consumer(broker, db)
    publish(broker, make_event("r-1"))
    assert c.consume_once().applied == 1
    with db.connect() as admin:  # the server ends the consumer's session (a restart, a kill)
        ended = admin.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).all()
        assert ended
    publish(broker, make_event("r-2"))
    failures = 0
    for _ in range(2):  # at most the one batch on the ended session fails, and is read again
        try:
            if c.consume_once().applied == 1:
                break
        except Exception:
            failures += 1
    assert failures <= 1
    assert effects(db) == ["r-1", "r-2"]


def test_a_batch_never_joins_a_transaction_left_open_on_the_kept_connection(broker, db) -> None:
    c = consumer(broker, db)
    publish(broker, make_event("r-1"))
    c.consume_once()
    c._connection.begin()  # type: ignore[union-attr]  # however it came about
    publish(broker, make_event("r-2"))
    assert c.consume_once().applied == 1
    _lock_effects_at_once(db)
    assert effects(db) == ["r-1", "r-2"]
    c.close()


def test_a_member_put_out_of_its_group_rejoins_and_goes_on(broker, engine) -> None:
    """Its offset commit refused (the broker was away, its session expired), a consumer keeps
    polling, and with a wait long enough to rejoin, instead of zero-wait polls that never do."""
    clock = Clock()
    c, source = paced(broker, engine, clock)
    publish(broker, make_event("r-1"), make_event("r-2"))
    assert c.consume_once().applied == 2
    source.evict()
    clock.now += 5  # the queued offsets are overdue
    assert c.consume_once().applied == 0  # the commit is refused: not a fault to back off from
    publish(broker, make_event("r-3"))
    result = c.consume_once()  # rejoined: read again from the committed offsets
    assert (result.applied, result.duplicates) == (1, 2)
    assert c.consume_once().applied == 0
    assert committed(broker) == 3
    assert effects(engine) == ["r-1", "r-2", "r-3"]
