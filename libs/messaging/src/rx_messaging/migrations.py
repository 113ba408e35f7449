"""Alembic schema migrations for a service's own database, driven from code.

Each service has a ``migrations`` directory (``env.py``, the revision template, ``versions/``)
inside its package and one :class:`Migrations` describing it; there is no alembic.ini, so
migrating works from an installed wheel and from any working directory. Every process of a
service calls :meth:`Migrations.upgrade` at start (one at a time: a PostgreSQL advisory lock,
SQLite's write lock); :meth:`Migrations.check` tells whether a database matches the models (after
``upgrade`` on an empty database: "the migrations match the models", which each service tests).

A service's ``adapters/migrate.py`` builds its ``Migrations`` and ends with
``if __name__ == "__main__": sys.exit(MIGRATIONS.main())``, the CLI ``scripts/new-migration``
uses (``revision "<message>"``, ``check``). Its ``migrations/env.py`` is
``run_environment(MIGRATIONS, lambda: get_settings().database_url)``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, Table
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.types import TypeDecorator

from .database import make_engine

# Date first so a directory listing shows revisions in the order they were written.
_FILE_TEMPLATE = "%(year)d%(month).2d%(day).2d_%(hour).2d%(minute).2d_%(rev)s_%(slug)s"


class MigrationError(RuntimeError):
    """A migration left the database inconsistent (and was rolled back)."""


@dataclass(frozen=True)
class Migrations:
    """One service's migrations: its tables and its ``migrations`` directory."""

    service: str
    tables: Sequence[Table]
    directory: Path

    @property
    def lock_id(self) -> int:
        """This service's advisory lock on a shared PostgreSQL server (stable per name)."""
        return 0x5258_0000_0000 + zlib.crc32(self.service.encode())

    def target_metadata(self) -> MetaData:
        """A fresh MetaData holding exactly this service's tables.

        ``SQLModel.metadata`` also holds every other model imported in the process (other
        services' tables in tests), and autogenerate must never see those. A copy also lets
        tests add drift to it without touching the real tables."""
        metadata = MetaData()
        for table in self.tables:
            table.to_metadata(metadata)
        return metadata

    def config(self, connection: Connection | None = None) -> Config:
        """The alembic.ini equivalent; ``connection`` is what env.py migrates."""
        config = Config()
        config.set_main_option("script_location", str(self.directory))
        # ConfigParser interpolation: a literal % is written %%.
        config.set_main_option("file_template", _FILE_TEMPLATE.replace("%", "%%"))
        config.attributes["connection"] = connection
        return config

    @contextlib.contextmanager
    def transaction(self, engine: Engine) -> Iterator[Connection]:
        """One transaction for a whole migration run, with SQLite's foreign keys off inside it.

        SQLite's batch mode rebuilds a table (copy, drop, rename) to change it. With foreign
        keys on, dropping a parent table would fail or empty it while children point at it;
        the pragma only takes effect outside a transaction, so it is set before BEGIN and the
        keys are verified before COMMIT instead."""
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            driver: Any = connection.connection.driver_connection
            if sqlite:
                driver.execute("PRAGMA foreign_keys=OFF")
            try:
                with connection.begin():
                    if connection.dialect.name == "postgresql":
                        # Every process of the service migrates at start; one at a time.
                        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({self.lock_id})")
                    yield connection
                    if sqlite:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise MigrationError(f"migration broke foreign keys: {broken[:5]}")
            finally:
                if sqlite:
                    driver.execute("PRAGMA foreign_keys=ON")  # the connection goes back to the pool

    def upgrade(self, engine: Engine, revision: str = "head") -> None:
        """Bring the database to ``revision`` (default: the newest) in one transaction where
        the database supports transactional DDL (PostgreSQL); a database already there is
        unchanged."""
        with self.transaction(engine) as connection:
            command.upgrade(self.config(connection), revision)

    def downgrade(self, engine: Engine, revision: str = "base") -> None:
        """Undo migrations down to ``revision`` (default: an empty database)."""
        with self.transaction(engine) as connection:
            command.downgrade(self.config(connection), revision)

    def upgrade_database(self, url: str) -> str | None:
        """Bring the database at ``url`` to the newest revision, print where it is now (the
        ``migrate`` command of a service) and return that revision."""
        engine = make_engine(url)
        try:
            self.upgrade(engine)
            revision = self.current(engine)
            print(f"{self.service} database at revision {revision}", flush=True)
            return revision
        finally:
            engine.dispose()

    def head(self) -> str | None:
        """The newest revision in ``versions/`` (None if there is none)."""
        return ScriptDirectory.from_config(self.config()).get_current_head()

    @staticmethod
    def current(engine: Engine) -> str | None:
        """The revision the database is at (None for a database never migrated)."""
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def check(self, engine: Engine, metadata: MetaData | None = None) -> list[str]:
        """Differences between the models (or ``metadata``) and the database; empty means
        current. Read-only: run ``upgrade`` first. Reports a database that is not at the newest
        revision, then every schema difference autogenerate sees, one readable line each."""
        expected = self.head()
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            at = context.get_current_revision()
            wanted = metadata if metadata is not None else self.target_metadata()
            diffs = compare_metadata(context, wanted)
        problems = [] if at == expected else [f"database is at revision {at}, head is {expected}"]
        return problems + [describe(diff) for diff in diffs]

    @contextlib.contextmanager
    def scratch_engine(self) -> Iterator[Engine]:
        """An empty SQLite database upgraded to head, thrown away afterwards."""
        with tempfile.TemporaryDirectory(prefix=f"{self.service}-migration-") as scratch:
            engine = make_engine(f"sqlite:///{scratch}/scratch.db")
            try:
                self.upgrade(engine)
                yield engine
            finally:
                engine.dispose()

    def revision(self, message: str) -> Path | None:
        """Autogenerate the next revision from the models; return its file (None: no changes).

        Compares against a scratch SQLite database upgraded to head, so the revision holds only
        what changed since the last one (and no local database is needed). Batch mode is on for
        SQLite, so the generated operations also work on SQLite, which cannot ALTER most
        things."""
        (self.directory / "versions").mkdir(exist_ok=True)  # git drops it once emptied
        with self.scratch_engine() as engine:
            if not self.check(engine):
                return None
            with self.transaction(engine) as connection:
                script = command.revision(
                    self.config(connection), message=message, autogenerate=True
                )
        scripts = script if isinstance(script, list) else [script]
        return Path(scripts[0].path) if scripts and scripts[0] is not None else None

    def main(self, argv: Sequence[str] | None = None) -> int:
        """``revision "<message>"``: autogenerate the next migration; ``check``: do the
        migrations produce exactly the models' schema?"""
        parser = argparse.ArgumentParser(
            prog=f"python -m {self.service}.adapters.migrate", description=Migrations.main.__doc__
        )
        sub = parser.add_subparsers(dest="command", required=True)
        sub.add_parser("revision").add_argument("message")
        sub.add_parser("check")
        args = parser.parse_args(argv)
        if args.command == "revision":
            with contextlib.redirect_stdout(sys.stderr):  # stdout: only the new file's path
                path = self.revision(args.message)
            if path is None:
                print("no changes: the migrations already match the models", file=sys.stderr)
                return 1
            print(path)
            return 0
        with self.scratch_engine() as engine:
            problems = self.check(engine)
        for problem in problems:
            print(problem)
        return 1 if problems else 0


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


def _render_item(type_: str, obj: Any, _autogen_context: Any) -> str | bool:
    """Write SQLModel's column types (AutoString, UTCDateTime) as the SQLAlchemy types they
    store as, e.g. ``sa.String(length=64)``: a migration describes DDL only, and must not break
    when SQLModel moves its internals."""
    if type_ == "type" and isinstance(obj, TypeDecorator):
        impl = obj.impl_instance
        if type(obj).__module__.startswith("sqlmodel.") and type(impl).__module__.startswith(
            "sqlalchemy."
        ):
            return f"sa.{impl!r}"
    return False


def run_environment(migrations: Migrations, database_url: Callable[[], str]) -> None:
    """The body of a service's ``migrations/env.py`` (run by Alembic, not imported).

    Migrates the connection handed over in ``config.attributes["connection"]`` (how
    :meth:`Migrations.upgrade` calls it, so the caller owns the transaction); without one, the
    database at ``database_url()`` (the service's settings)."""
    from alembic import context

    metadata = migrations.target_metadata()

    def options(dialect_name: str) -> dict[str, Any]:
        return {
            "target_metadata": metadata,
            "compare_type": True,
            # SQLite cannot ALTER most things; batch mode copies the table instead.
            "render_as_batch": dialect_name == "sqlite",
            "render_item": _render_item,
        }

    def run(connection: Connection) -> None:
        context.configure(connection=connection, **options(connection.dialect.name))
        with context.begin_transaction():
            context.run_migrations()

    if context.is_offline_mode():  # ``--sql``: print the SQL instead of running it
        url = database_url()
        dialect = url.split(":", 1)[0].split("+")[0]
        context.configure(url=url, literal_binds=True, **options(dialect))
        with context.begin_transaction():
            context.run_migrations()
        return
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        run(given)
        return
    engine: Engine = given if isinstance(given, Engine) else make_engine(database_url())
    try:
        with engine.begin() as connection:
            run(connection)
    finally:
        if given is None:
            engine.dispose()
