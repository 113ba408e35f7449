"""Ingest: every well-formed event on every ``*.v1`` topic is appended once, known type or
not; only malformed records are dead-lettered."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from audit.adapters.tables import ENTRY, REFERRAL_ORG
from audit.config import EVERY_V1_TOPIC
from audit.domain import chain
from audit.entrypoints.workers import record_event
from rx_contracts import Envelope, encode, examples, wrap
from rx_messaging.consumer import InboxConsumer
from rx_messaging.fake import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
from rx_messaging.records import Record
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from .conftest import submitted, verify_database

REFERRALS = "referrals.events.v1"
DECISIONS = "routing.decisions.v1"
RAPID = "provider.rapid-response.v1"


@pytest.fixture
def broker() -> InMemoryBroker:
    broker = InMemoryBroker()
    for topic in (REFERRALS, DECISIONS, RAPID):
        broker.create_topic(topic, 3)
        broker.create_topic(topic + ".dlq", 1)
    return broker


def consume(broker: InMemoryBroker, engine: Engine) -> Any:
    source = InMemoryRecordSource(broker, "audit", pattern=EVERY_V1_TOPIC)
    return InboxConsumer("audit", source, engine, record_event, InMemoryPublisher(broker))


def entries(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(ENTRY).order_by(ENTRY.c.sequence)).mappings()]


def access_event() -> Envelope:
    """A well-formed CloudEvent of a type the audit service has never heard of."""
    return Envelope(
        id="access-1",
        type="rx.security.AccessGranted.v1",
        source="/services/security",
        time=submitted(1).time,
        subject="client-42",
        dataschema="urn:referral-exchange:schema:rx.security.AccessGranted.v1",
        correlationid="c-1",
        data={"client_id": "client-42", "organisation": "B81001", "scopes": ["referrals"]},
    )


def test_known_and_unknown_event_types_are_recorded_once_each(
    broker: InMemoryBroker, engine: Engine
) -> None:
    routed = wrap(examples.referral_routed("r-1"), source="/services/routing", event_id="d-1")
    broker.append(REFERRALS, *encode(submitted(1)))
    broker.append(DECISIONS, *encode(routed))
    broker.append(RAPID, *encode(routed))  # the same decision, same id, on the provider topic
    broker.append(REFERRALS, *encode(submitted(1)))  # redelivered
    broker.create_topic("security.access.v1", 1)  # a topic that appeared after deployment
    broker.append("security.access.v1", *encode(access_event()))

    result = consume(broker, engine).consume_once()

    assert (result.applied, result.duplicates, result.dead_lettered) == (3, 2, 0)
    recorded = entries(engine)
    assert [e["event_id"] for e in recorded] == ["e-1", "d-1", "access-1"]
    assert [e["sequence"] for e in recorded] == [1, 2, 3]
    unknown = recorded[2]
    assert (unknown["type"], unknown["referral_id"], unknown["actor_org"]) == (
        "rx.security.AccessGranted.v1",
        None,
        "RX",
    )
    assert json.loads(unknown["payload"])["scopes"] == ["referrals"]
    assert verify_database(engine, lambda _: []).ok


def test_malformed_records_go_to_the_dead_letter_topic_and_are_not_recorded(
    broker: InMemoryBroker, engine: Engine
) -> None:
    broker.append(REFERRALS, b"r-x", b"not json", [("ce_specversion", b"1.0")])
    control = submitted(2).model_copy(update={"id": "bad\x1fid"})
    broker.append(REFERRALS, *encode(control))  # would make the hashed fields ambiguous
    broker.append(REFERRALS, *encode(submitted(3)))

    result = consume(broker, engine).consume_once()

    assert (result.applied, result.dead_lettered) == (1, 2)
    errors = [dict(r.headers)["dlq_error"] for r in broker.records(REFERRALS + ".dlq")]
    assert any(b"not JSON" in e for e in errors)
    assert any(b"event id contains a control character" in e for e in errors)
    assert [e["event_id"] for e in entries(engine)] == ["e-3"]


def test_an_entry_keeps_where_the_event_came_from_and_whom_it_concerns(engine: Engine) -> None:
    routed = wrap(examples.referral_routed("r-7"), source="/services/routing", event_id="d-7")
    with Session(engine) as session:
        record_event(session, submitted(7), Record(REFERRALS, 2, 41, None, None))
        record_event(session, routed, Record(DECISIONS, 1, 9, None, None))
        session.commit()

    first, second = entries(engine)
    assert (first["topic"], first["partition"], first["offset"]) == (REFERRALS, 2, 41)
    assert first["occurred_at_us"] == chain.to_us(submitted(7).time)
    assert first["actor_org"] == "B81001" and second["actor_org"] == "RX"
    assert second["prev_hash"] == first["hash"]
    assert involved(engine) == [("B81001", "r-7"), ("RXA01", "r-7")]


def involved(engine: Engine) -> list[tuple[str, str]]:
    """The read model: (organisation, referral) pairs."""
    with engine.connect() as conn:
        query = select(REFERRAL_ORG.c.organisation, REFERRAL_ORG.c.referral_id)
        return sorted((row[0], row[1]) for row in conn.execute(query))


def test_a_record_rolled_back_inside_a_batch_involves_no_organisation(engine: Engine) -> None:
    with Session(engine) as session:
        for n, referrer in ((1, "B81001"), (2, "L81001"), (3, "B81001")):
            savepoint = session.begin_nested()
            practice = {"referrer_org": referrer, "actor": {"organisation": referrer}}
            record_event(session, submitted(n, **practice), Record(REFERRALS, 0, n, None, None))
            if n == 2:
                savepoint.rollback()
            else:
                savepoint.commit()
        session.commit()

    assert involved(engine) == [("B81001", "r-1"), ("B81001", "r-3")]


def test_a_record_rolled_back_inside_a_batch_leaves_no_trace_in_the_chain(
    engine: Engine,
) -> None:
    """One transaction per poll batch, a savepoint per record: a record whose savepoint is
    rolled back after it was appended must not leave the next record linked to it."""
    with Session(engine) as session:
        for n in range(1, 5):
            savepoint = session.begin_nested()
            record_event(session, submitted(n), Record(REFERRALS, 0, n, None, None))
            if n == 2:
                savepoint.rollback()  # e.g. a poison record: its effects are undone
            else:
                savepoint.commit()
        session.commit()

    assert [e["event_id"] for e in entries(engine)] == ["e-1", "e-3", "e-4"]
    result = verify_database(engine, lambda _: [])
    assert (result.ok, result.entries) == (True, 3)


def test_a_batch_reads_the_head_once_and_later_batches_continue_the_chain(
    engine: Engine,
) -> None:
    # Every statement as SQLite runs it (the head is read on the driver, past SQLAlchemy).
    engine.dispose()
    statements: list[str] = []

    def trace(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    event.listen(engine, "connect", trace)
    with Session(engine) as session:
        for n in range(1, 4):
            record_event(session, submitted(n), Record(REFERRALS, 0, n, None, None))
        session.commit()
    first_batch = list(statements)
    with Session(engine) as session:  # the next batch, as a new transaction
        record_event(session, submitted(4), Record(REFERRALS, 0, 4, None, None))
        session.commit()

    head_reads = [s for s in first_batch if re.match(r"SELECT .*FROM audit_chain_head", s, re.S)]
    assert len(head_reads) == 1
    assert verify_database(engine, lambda _: []).entries == 4
