"""Engines for a service's own database: SQLite files by default, PostgreSQL via URL."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import NullPool
from sqlmodel import create_engine

BUSY_TIMEOUT_S = 30
CHECKPOINT_INTERVAL_S = 0.2
# Past this many frames (8 MB of 4 KB pages) the WAL is started over (see _Checkpointer._run).
RESTART_FRAMES = 2048
# Inline checkpoints only as a safety net, should the background checkpointer fall behind:
# 10,000 pages (~40 MB of WAL) instead of SQLite's default of 1,000.
INLINE_CHECKPOINT_PAGES = 10_000


class DatabaseBusy(PoolTimeout):
    """No transaction slot within the busy timeout: the database is overloaded or stuck. A
    pool timeout in kind (no connection within the pool's timeout), so callers that answer
    one (the APIs: 503 with Retry-After) answer both."""


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
        _serialise_transactions(engine, path if path and path != ":memory:" else None)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _serialise_transactions(engine: Engine, path: str | None) -> None:
    """One SQLite transaction at a time per process, queued on a Python lock.

    pysqlite's implicit transactions defer BEGIN; we emit BEGIN IMMEDIATE so that a read
    followed by a write in one unit of work cannot interleave with another writer. Between
    processes SQLite's busy timeout arbitrates; between the threads of one API process a lock
    does it better — SQLite's busy handler sleeps in steps of up to 100 ms, which under
    concurrent requests costs far more than the transactions themselves. The lock is released
    after COMMIT/ROLLBACK has run (the dialect's methods, not the events, which fire before).
    After a COMMIT the lock is released first, then the checkpointer is told (see there).

    BEGIN IMMEDIATE is the dialect's ``do_begin`` (a no-op for pysqlite), sent on the driver's
    connection: every transaction of every process starts here, and a statement through the
    Connection costs several times the BEGIN itself. A driver error is still wrapped as
    SQLAlchemy's (``do_begin`` runs inside the Connection's error handling)."""
    lock = threading.Lock()
    checkpointer = _Checkpointer(path, lock) if path else None
    holders: set[int] = set()
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def begin(connection: Any) -> None:
        dbapi_connection = connection.dbapi_connection  # the pool's proxy: its driver connection
        # Same bound as SQLite's busy timeout: a stuck holder becomes an error, not a hang.
        if not lock.acquire(timeout=BUSY_TIMEOUT_S):
            raise DatabaseBusy(f"database busy: no transaction slot within {BUSY_TIMEOUT_S}s")
        try:
            dbapi_connection.execute("BEGIN IMMEDIATE")
        except BaseException:
            lock.release()
            raise
        holders.add(id(dbapi_connection))

    def finish(end: Any) -> Any:
        def done(dbapi_connection: Any) -> None:
            try:
                end(dbapi_connection)
            finally:
                key = id(getattr(dbapi_connection, "dbapi_connection", dbapi_connection))
                if key in holders:
                    holders.discard(key)
                    lock.release()
            if checkpointer is not None and end is commit:
                checkpointer.committed()

        return done

    dialect.do_begin = begin  # type: ignore[method-assign,assignment]
    dialect.do_commit = finish(commit)  # type: ignore[method-assign]
    dialect.do_rollback = finish(rollback)  # type: ignore[method-assign]
    if checkpointer is not None:
        event.listen(engine, "engine_disposed", lambda _engine: checkpointer.stop())
        weakref.finalize(engine, checkpointer.stop)


class _Checkpointer:
    """Copies the WAL back into the database file from a thread of its own.

    SQLite's automatic checkpoint runs inside the COMMIT that crosses the threshold, while
    that transaction still holds the process's transaction lock (above): it copies the WAL
    and waits for two fdatasyncs, and every request behind it waits too, several times a
    second under load. Here a PASSIVE checkpoint, which waits for no reader or writer, runs
    at most every CHECKPOINT_INTERVAL_S after commits, on its own short-lived connection;
    the Python sqlite3 module releases the GIL while it runs, and the lock is held only for
    the short restart once per RESTART_FRAMES (figures in bench/RESULTS.md). Automatic
    checkpoints stay on at a higher threshold (INLINE_CHECKPOINT_PAGES) in case this thread
    ever falls behind.
    The thread starts with the first commit and ends when the engine is disposed or
    collected; a disposed engine that commits again gets a new one."""

    def __init__(self, path: str, lock: threading.Lock) -> None:
        self._path = path
        self._lock = lock
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        if self._thread is None or self._stopped.is_set():
            self._start_thread()
        self._wake.set()

    def _start_thread(self) -> None:
        with self._start:
            if self._thread is None or self._stopped.is_set():
                # Each thread gets its own stop signal: one stopping (the engine disposed)
                # never stops the next (the disposed engine used again).
                self._stopped = stopped = threading.Event()
                self._thread = threading.Thread(
                    target=self._run,
                    args=(stopped,),
                    name=f"wal-checkpoint {Path(self._path).name}",
                    daemon=True,
                )
                self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def _run(self, stopped: threading.Event) -> None:
        while True:
            self._wake.wait()
            if stopped.is_set():
                return
            self._wake.clear()
            frames = self.checkpoint()
            # SQLite starts the WAL over from its beginning only when a transaction begins
            # with every frame copied, which never happens while this process's writers keep
            # appending during the checkpoint. So once the WAL is long, the few frames added
            # meanwhile are copied with the transaction lock held: a pause of a few ms once per
            # RESTART_FRAMES instead of a WAL that grows until the inline checkpoint.
            if frames >= RESTART_FRAMES and self._lock.acquire(timeout=BUSY_TIMEOUT_S):
                try:
                    self.checkpoint()
                finally:
                    self._lock.release()
            if stopped.wait(CHECKPOINT_INTERVAL_S):
                return

    def checkpoint(self) -> int:
        """One PASSIVE checkpoint; returns the WAL's length in frames. A busy database
        (another process checkpointing) or a file removed under us is left for the next
        round (and counts as 0)."""
        # mode=rw: never create the file, should it have been removed meanwhile.
        uri = Path(self._path).absolute().as_uri() + "?mode=rw"
        with contextlib.suppress(sqlite3.Error):
            connection = sqlite3.connect(uri, uri=True, timeout=0.1, isolation_level=None)
            try:
                _busy, frames, _copied = connection.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)"
                ).fetchone()
                return int(frames)
            finally:
                connection.close()
        return 0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see above)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    _enter_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA wal_autocheckpoint={INLINE_CHECKPOINT_PAGES}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _enter_wal(cursor: sqlite3.Cursor, retry_s: float = 0.01) -> None:
    """Switch a new database to WAL (a no-op once it is). Several processes opening a database
    not yet in WAL (every process of a service at its first start) can each hold a read lock
    while wanting the exclusive one; SQLite then answers "database is locked" at once instead
    of waiting (a deadlock its busy handler cannot resolve), so the switch is tried again until
    the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(retry_s)


def unpooled(engine: Engine) -> Engine:
    """An engine on ``engine``'s database whose connections are never pooled: closing one, or
    dropping it unclosed, ends its database session, and with it the session-level advisory
    locks it holds (``rx_messaging.slots``, ``.lease``). A pooled one would keep them."""
    return create_engine(engine.url, poolclass=NullPool, hide_parameters=True)


def end_session(connection: Connection) -> None:
    """Close ``connection`` for good, never back to a pool (see :func:`unpooled`)."""
    with contextlib.suppress(Exception):
        connection.invalidate()
    with contextlib.suppress(Exception):
        connection.close()


def is_postgres(engine: Engine) -> bool:
    """Whether row locks such as FOR UPDATE SKIP LOCKED are available."""
    return engine.dialect.name == "postgresql"
