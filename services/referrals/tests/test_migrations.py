"""The referrals migrations produce exactly the models' schema, on SQLite and PostgreSQL, and
``check`` notices when they do not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from referrals.adapters import migrate
from referrals.adapters.tables import TABLES, ReferralRow
from referrals.config import get_settings
from referrals.entrypoints.migrate import main as migrate_main
from rx_messaging.database import make_engine
from rx_messaging.tables import InboxMessage
from sqlalchemy import Column, Integer, String, Table, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

TABLE_NAMES = {table.name for table in TABLES}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_upgrading_an_empty_database_gives_exactly_the_models_schema(engine: Engine) -> None:
    assert migrate.current(engine) is None

    migrate.upgrade(engine)

    assert migrate.current(engine) == migrate.head() is not None
    assert set(inspect(engine).get_table_names()) == TABLE_NAMES | {"alembic_version"}
    assert migrate.check(engine) == []


def test_check_reports_a_database_that_was_never_migrated(engine: Engine) -> None:
    problems = migrate.check(engine)

    assert f"database is at revision None, head is {migrate.head()}" in problems
    assert {f"add_table {name}" for name in TABLE_NAMES} <= set(problems)


def test_upgrading_twice_changes_nothing_and_keeps_the_rows(engine: Engine) -> None:
    migrate.upgrade(engine)
    row = InboxMessage(consumer="c", event_id="e-1", topic="t", partition=0, offset=7)
    with Session(engine) as session:
        session.add(row)
        session.commit()

    migrate.upgrade(engine)

    with Session(engine) as session:
        assert [m.offset for m in session.exec(select(InboxMessage))] == [7]
    assert migrate.check(engine) == []


def test_downgrade_to_base_then_upgrade_again(engine: Engine) -> None:
    migrate.upgrade(engine)

    migrate.downgrade(engine, "base")
    assert migrate.current(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

    migrate.upgrade(engine)
    assert migrate.check(engine) == []


def test_check_reports_a_column_or_table_the_migrations_lack(engine: Engine) -> None:
    migrate.upgrade(engine)
    drifted = migrate.target_metadata()  # a copy: the real tables stay as they are
    drifted.tables["referral"].append_column(Column("triage_score", Integer, nullable=True))
    Table("waiting_list", drifted, Column("id", Integer, primary_key=True))

    problems = migrate.check(engine, drifted)

    assert "add_column referral.triage_score INTEGER" in problems
    assert "add_table waiting_list" in problems
    assert len(problems) == 2
    assert "triage_score" not in ReferralRow.__table__.columns  # type: ignore[attr-defined]
    assert migrate.check(engine) == []


def test_check_reports_a_column_the_models_lack(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.begin() as conn:  # e.g. a hand-made change on a live database
        conn.execute(text("ALTER TABLE referral ADD COLUMN legacy_ref VARCHAR(20)"))

    assert migrate.check(engine) == [f"remove_column referral.legacy_ref {String(20)}"]


def test_the_migrate_role_upgrades_the_configured_database_from_any_directory(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFERRALS_DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)  # no alembic.ini here: the config must come from the package
    get_settings.cache_clear()
    try:
        migrate_main()
    finally:
        get_settings.cache_clear()

    engine = make_engine(database_url)
    try:
        assert migrate.check(engine) == []
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_parent_child(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite database where ``child`` rows reference ``parent`` rows, like
    ``referral_transition`` and ``referral``, independent of today's referrals columns."""
    engine = make_engine(f"sqlite:///{tmp_path / 'fk.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY, name VARCHAR(10))"))
        conn.execute(
            text(
                "CREATE TABLE child (id INTEGER PRIMARY KEY, "
                "parent_id INTEGER NOT NULL REFERENCES parent(id))"
            )
        )
        conn.execute(text("INSERT INTO parent VALUES (1, 'p')"))
        conn.execute(text("INSERT INTO child VALUES (1, 1)"))
    yield engine
    engine.dispose()


def test_on_sqlite_rebuilding_a_referenced_table_keeps_its_rows(
    sqlite_parent_child: Engine,
) -> None:
    engine = sqlite_parent_child

    with migrate.MIGRATIONS.transaction(engine) as conn:  # what upgrade() runs migrations in
        operations = Operations(MigrationContext.configure(conn))
        with operations.batch_alter_table("parent", recreate="always") as batch:
            batch.alter_column("name", type_=String(50))  # copy, drop, rename

    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, name FROM parent")).all() == [(1, "p")]
        assert conn.execute(text("SELECT id, parent_id FROM child")).all() == [(1, 1)]
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1  # back on for others
    [name] = [c for c in inspect(engine).get_columns("parent") if c["name"] == "name"]
    assert str(name["type"]) == "VARCHAR(50)"


def test_on_sqlite_a_migration_that_breaks_foreign_keys_is_rolled_back(
    sqlite_parent_child: Engine,
) -> None:
    engine = sqlite_parent_child

    with (
        pytest.raises(migrate.MigrationError, match="foreign keys"),
        migrate.MIGRATIONS.transaction(engine) as conn,
    ):
        conn.execute(text("INSERT INTO child VALUES (2, 99)"))  # no parent 99

    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM child")).scalars().all() == [1]


def test_the_target_metadata_is_exactly_this_services_tables() -> None:
    assert set(migrate.target_metadata().tables) == TABLE_NAMES
