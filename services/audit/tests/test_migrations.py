"""The audit migrations give exactly the models' schema, and the chain works the same on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from audit.adapters.migrate import MIGRATIONS
from audit.adapters.tables import TABLES
from audit.domain.errors import CheckpointsUnavailable
from audit.entrypoints.workers import record_event
from rx_messaging.database import make_engine
from rx_messaging.records import Record
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlmodel import Session

from .conftest import submitted, verify_database


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
