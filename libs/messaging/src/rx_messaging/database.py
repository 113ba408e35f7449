"""Engines for a service's own database: SQLite files by default, PostgreSQL via URL."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import create_engine

BUSY_TIMEOUT_S = 30


class DatabaseBusy(TimeoutError):
    """No transaction slot within the busy timeout: the database is overloaded or stuck."""


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine tuned for our access pattern: several processes (API, relay, consumer)
    share one SQLite file, so WAL mode and a busy timeout; PostgreSQL gets pre-ping.
    Statement parameters are left out of error messages: they hold patient data, and error
    messages end up in logs."""
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        _serialise_transactions(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _serialise_transactions(engine: Engine) -> None:
    """One SQLite transaction at a time per process, queued on a Python lock.

    pysqlite's implicit transactions defer BEGIN; we emit BEGIN IMMEDIATE so that a read
    followed by a write in one unit of work cannot interleave with another writer. Between
    processes SQLite's busy timeout arbitrates; between the threads of one API process a lock
    does it better — SQLite's busy handler sleeps in steps of up to 100 ms, which under
    concurrent requests costs far more than the transactions themselves. The lock is released
    after COMMIT/ROLLBACK has run (the dialect's methods, not the events, which fire before)."""
    lock = threading.Lock()
    holders: set[int] = set()
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def begin(conn: Any) -> None:
        # Same bound as SQLite's busy timeout: a stuck holder becomes an error, not a hang.
        if not lock.acquire(timeout=BUSY_TIMEOUT_S):
            raise DatabaseBusy(f"database busy: no transaction slot within {BUSY_TIMEOUT_S}s")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            lock.release()
            raise
        holders.add(id(conn.connection.dbapi_connection))

    def finish(end: Any) -> Any:
        def done(dbapi_connection: Any) -> None:
            try:
                end(dbapi_connection)
            finally:
                key = id(getattr(dbapi_connection, "dbapi_connection", dbapi_connection))
                if key in holders:
                    holders.discard(key)
                    lock.release()

        return done

    event.listen(engine, "begin", begin)
    dialect.do_commit = finish(commit)  # type: ignore[method-assign]
    dialect.do_rollback = finish(rollback)  # type: ignore[method-assign]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see above)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def is_postgres(engine: Engine) -> bool:
    """Whether row locks such as FOR UPDATE SKIP LOCKED are available."""
    return engine.dialect.name == "postgresql"
