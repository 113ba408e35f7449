"""The routing migrations produce exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from routing.adapters import migrate
from routing.adapters.tables import TABLES
from routing.entrypoints.seed import seed_demo
from rx_messaging.database import make_engine
from sqlalchemy import inspect
from sqlalchemy.engine import Engine


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_upgrade_gives_the_models_schema_and_downgrade_removes_it(engine: Engine) -> None:
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.MIGRATIONS.head() is not None
    assert set(inspect(engine).get_table_names()) == {t.name for t in TABLES} | {"alembic_version"}
    assert migrate.MIGRATIONS.check(engine) == []
    assert seed_demo(engine) > 0, "the demo loads into a migrated database"
    migrate.upgrade(engine)
    assert seed_demo(engine) == 0, "upgrading again keeps the rows; seeding again adds nothing"
    migrate.MIGRATIONS.downgrade(engine)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
