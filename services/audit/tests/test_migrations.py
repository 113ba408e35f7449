"""The audit migrations give exactly the models' schema, and the chain works the same on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from audit.adapters.migrate import MIGRATIONS
from audit.adapters.queries import EntryFilter
from audit.adapters.tables import TABLES
from audit.domain.errors import CheckpointsUnavailable
from audit.entrypoints.workers import record_event
from audit.service_layer import handlers
from rx_contracts import examples, wrap
from rx_messaging.database import make_engine
from rx_messaging.records import Record
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlmodel import Session

from .conftest import record_all, submitted, unit_of_work, verify_database


@pytest.fixture
def empty(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_upgrading_an_empty_database_gives_exactly_the_models_schema(empty: Engine) -> None:
    MIGRATIONS.upgrade(empty)

    assert MIGRATIONS.current(empty) == MIGRATIONS.head() is not None
    assert set(inspect(empty).get_table_names()) == {t.name for t in TABLES} | {"alembic_version"}
    assert MIGRATIONS.check(empty) == []


def test_downgrade_to_base_then_upgrade_again(empty: Engine) -> None:
    MIGRATIONS.upgrade(empty)
    MIGRATIONS.downgrade(empty, "base")
    assert set(inspect(empty).get_table_names()) <= {"alembic_version"}
    MIGRATIONS.upgrade(empty)
    assert MIGRATIONS.check(empty) == []


def test_the_chain_is_appended_and_verified_on_either_database(empty: Engine) -> None:
    MIGRATIONS.upgrade(empty)
    for batch in ([submitted(1), submitted(2)], [submitted(3)]):
        with Session(empty) as session:
            for n, envelope in enumerate(batch):
                record_event(session, envelope, Record("referrals.events.v1", 0, n, None, None))
            session.commit()

    result = verify_database(empty, lambda _: [])

    assert (result.ok, result.entries) == (True, 3)


def test_without_the_checkpoints_a_consistent_chain_is_still_not_called_intact(
    empty: Engine,
) -> None:
    MIGRATIONS.upgrade(empty)
    with Session(empty) as session:
        record_event(session, submitted(1), Record("referrals.events.v1", 0, 0, None, None))
        session.commit()

    def unavailable(_chain_id: str) -> list[object]:
        raise CheckpointsUnavailable("no Kafka broker answers at 127.0.0.1:1")

    result = verify_database(empty, unavailable)  # type: ignore[arg-type]

    assert (result.ok, result.entries, result.first_broken) == (False, 1, None)
    assert "missing entries at its end cannot be ruled out" in (result.problem or "")


BEFORE_THE_READ_MODEL = "78c14ae1c705"


def test_the_organisation_filter_answers_the_same_across_a_downgrade_and_upgrade(
    empty: Engine,
) -> None:
    MIGRATIONS.upgrade(empty)
    routed = wrap(examples.referral_routed("r-2", assigned_org="RXB02"), source="/s/routing")
    record_all(empty, [submitted(1), submitted(2), routed])

    def sequences(organisation: str) -> list[int]:
        where = EntryFilter(organisation=organisation)
        return [e["sequence"] for e in handlers.find_entries(where, 0, 100, unit_of_work(empty))]

    assert (sequences("B81001"), sequences("RXB02")) == ([1, 2, 3], [2, 3])
    # The revision before the read model found entries by their own organisations: a
    # downgrade gives every entry of a referral the organisations the referral involves.
    MIGRATIONS.downgrade(empty, BEFORE_THE_READ_MODEL)
    with empty.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT organisation, sequence FROM audit_entry_org ORDER BY organisation, sequence"
        ).all()
    assert [tuple(row) for row in rows] == [
        ("B81001", 1),
        ("B81001", 2),
        ("B81001", 3),
        ("RXB02", 2),
        ("RXB02", 3),
    ]
    # Upgrading again fills the read model from those rows.
    MIGRATIONS.upgrade(empty)
    assert (sequences("B81001"), sequences("RXB02")) == ([1, 2, 3], [2, 3])
