"""Schema migrations of the referrals database (Alembic), driven from code.

There is no alembic.ini: the configuration is built here and points at the ``migrations``
directory inside this package, so migrating works from an installed wheel and from any
working directory. ``upgrade`` is what the ``migrate`` role runs before the service starts;
``check`` tells whether a database matches the models (after ``upgrade`` on an empty database,
that is "the migrations match the models", which a test enforces).

CLI (used by ``scripts/new-migration``)::

    python -m referrals.adapters.migrate revision "<message>"   # autogenerate the next revision
    python -m referrals.adapters.migrate check                  # do the migrations match?
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from rx_messaging.database import make_engine
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection, Engine

from .tables import TABLES

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
"""``referrals/migrations``: env.py, the revision template and ``versions/``."""

# Date first so a directory listing shows revisions in the order they were written.
_FILE_TEMPLATE = "%(year)d%(month).2d%(day).2d_%(hour).2d%(minute).2d_%(rev)s_%(slug)s"


def target_metadata() -> MetaData:
    """A fresh MetaData holding exactly this service's tables.

    ``SQLModel.metadata`` also holds every other model imported in the process (other services'
    tables in tests), and autogenerate must never see those. A copy also lets tests add
    drift to it without touching the real tables.
    """
    metadata = MetaData()
    for table in TABLES:
        table.to_metadata(metadata)
    return metadata


def alembic_config(connection: Connection | None = None) -> Config:
    """The alembic.ini equivalent; ``connection`` is what env.py migrates (see there)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal % is written %%.
    config.set_main_option("file_template", _FILE_TEMPLATE.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


_LOCK_ID = 0x52585F524546  # "RX_REF": this service's migration lock on a shared server


class MigrationError(RuntimeError):
    """A migration left the database inconsistent (and was rolled back)."""


@contextlib.contextmanager
def migration_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction for a whole migration run, with SQLite's foreign keys off inside it.

    SQLite's batch mode rebuilds a table (copy, drop, rename) to change it. With foreign keys
    on, dropping ``referral`` would fail or empty it while ``referral_transition`` rows point
    at it; the pragma only takes effect outside a transaction, so it is set before BEGIN and
    the keys are verified before COMMIT instead.
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        driver: Any = connection.connection.driver_connection
        if sqlite:
            driver.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    # Every process of the service migrates at start; one at a time.
                    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_ID})")
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise MigrationError(f"migration broke foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                driver.execute("PRAGMA foreign_keys=ON")  # the connection goes back to the pool


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (default: the newest) in one transaction where the
    database supports transactional DDL (PostgreSQL); a database already there is unchanged."""
    with migration_transaction(engine) as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Undo migrations down to ``revision`` (default: an empty database)."""
    with migration_transaction(engine) as connection:
        command.downgrade(alembic_config(connection), revision)


def head() -> str | None:
    """The newest revision in ``versions/`` (None if there is none)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(engine: Engine) -> str | None:
    """The revision the database is at (None for a database never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check(engine: Engine, metadata: MetaData | None = None) -> list[str]:
    """Differences between the models (or ``metadata``) and the database; empty means current.

    Read-only: run ``upgrade`` first. Reports a database that is not at the newest revision,
    then every schema difference autogenerate sees (tables, columns, types, nullability,
    indexes, constraints), one readable line each.
    """
    expected = head()
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        at = context.get_current_revision()
        diffs = compare_metadata(context, metadata if metadata is not None else target_metadata())
    problems = [] if at == expected else [f"database is at revision {at}, head is {expected}"]
    return problems + [describe(diff) for diff in diffs]


def describe(diff: Any) -> str:
    """One line for one autogenerate difference ("+" = in the models, not in the database)."""
    if isinstance(diff, list):  # several changes to one column
        return "; ".join(describe(item) for item in diff)
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        return f"{kind} {diff[1].name}"
    if kind in ("add_column", "remove_column"):
        _, _schema, table, column = diff
        return f"{kind} {table}.{column.name} {column.type}"
    if kind in ("add_index", "remove_index"):
        index = diff[1]
        columns = ", ".join(str(c.name) for c in index.columns)
        return f"{kind} {index.name} on {index.table.name}({columns})"
    if kind in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        constraint = diff[1]
        columns = ", ".join(str(c.name) for c in constraint.columns)
        kind_name = type(constraint).__name__
        return f"{kind} {kind_name} {constraint.name} on {constraint.table.name}({columns})"
    if kind.startswith("modify_"):
        _, _schema, table, column, _existing, old, new = diff
        return f"{kind} {table}.{column}: {old} -> {new}"
    return " ".join(str(part) for part in diff)


def revision(message: str) -> Path | None:
    """Autogenerate the next revision from the models; return its file (None: no changes).

    Compares against a scratch SQLite database upgraded to head, so the revision holds only
    what changed since the last one (and no local database is needed). Batch mode is on for
    SQLite, so the generated operations also work on SQLite, which cannot ALTER most things.
    """
    (MIGRATIONS_DIR / "versions").mkdir(exist_ok=True)  # git drops it once emptied
    with tempfile.TemporaryDirectory(prefix="referrals-migration-") as scratch:
        engine = make_engine(f"sqlite:///{scratch}/scratch.db")
        try:
            upgrade(engine)
            if not check(engine):
                return None
            with migration_transaction(engine) as connection:
                script = command.revision(
                    alembic_config(connection), message=message, autogenerate=True
                )
        finally:
            engine.dispose()
    scripts = script if isinstance(script, list) else [script]
    return Path(scripts[0].path) if scripts and scripts[0] is not None else None


def main(argv: Sequence[str] | None = None) -> int:
    """``revision "<message>"``: autogenerate the next migration; ``check``: do the migrations
    produce exactly the models' schema?"""
    parser = argparse.ArgumentParser(
        prog="python -m referrals.adapters.migrate", description=main.__doc__
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("revision").add_argument("message")
    sub.add_parser("check")
    args = parser.parse_args(argv)
    if args.command == "revision":
        with contextlib.redirect_stdout(sys.stderr):  # stdout: only the new file's path
            path = revision(args.message)
        if path is None:
            print("no changes: the migrations already match the models", file=sys.stderr)
            return 1
        print(path)
        return 0
    with tempfile.TemporaryDirectory(prefix="referrals-migration-") as scratch:
        engine = make_engine(f"sqlite:///{scratch}/scratch.db")
        try:
            upgrade(engine)
            problems = check(engine)
        finally:
            engine.dispose()
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
