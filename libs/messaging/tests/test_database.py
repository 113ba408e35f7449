"""SQLite engines: transactions of one process queue on a lock, and the WAL is copied back into
the database file by a background checkpointer, outside that lock, without growing unbounded."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rx_messaging import database
from rx_messaging.database import make_engine
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

PAGE = 4096


def checkpointers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("wal-checkpoint ")]


def test_wal_stays_bounded_under_continuous_writes_and_nothing_is_lost(tmp_path: Path) -> None:
    """Several writer threads commit ~32 KB each, about as many pages per second as a busy API
    writes, for well past the inline checkpoint threshold: the WAL keeps being started over, so it never comes near the size
    at which SQLite would checkpoint inside a commit, and every row is there afterwards."""
    path = tmp_path / "busy.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE blob (id INTEGER PRIMARY KEY, body BLOB NOT NULL)"))
    wal = Path(f"{path}-wal")
    inline_bytes = database.INLINE_CHECKPOINT_PAGES * PAGE
    commits_per_writer, writers, largest = 600, 3, [0]
    body = bytes(32 * 1024)

    def write() -> None:
        for _ in range(commits_per_writer):
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO blob (body) VALUES (:b)"), {"b": body})
            time.sleep(0.003)  # ~9 pages per commit: ~7,000 pages/s from three writers

    def watch(done: threading.Event) -> None:
        while not done.wait(0.01):
            if wal.exists():
                largest[0] = max(largest[0], wal.stat().st_size)

    done = threading.Event()
    watcher = threading.Thread(target=watch, args=(done,))
    watcher.start()
    threads = [threading.Thread(target=write) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()

    written = writers * commits_per_writer * len(body)
    assert written > 1.2 * inline_bytes  # the test writes past the inline threshold ...
    assert largest[0] < 0.75 * inline_bytes  # ... and the WAL never gets near it
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM blob")).scalar_one() == (
            writers * commits_per_writer
        )
        assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
    engine.dispose()


def test_checkpointer_starts_with_the_first_commit_and_ends_with_the_engine(
    tmp_path: Path,
) -> None:
    before = set(checkpointers())
    engine = make_engine(f"sqlite:///{tmp_path / 'life.db'}")
    assert not set(checkpointers()) - before  # an engine nobody writes through costs no thread
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (a INTEGER)"))
    (mine,) = set(checkpointers()) - before
    assert mine.name == "wal-checkpoint life.db"
    engine.dispose()
    mine.join(timeout=5)
    assert not mine.is_alive()
    # A disposed engine still works; used again, it checkpoints again.
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    (again,) = set(checkpointers()) - before
    assert again is not mine and again.is_alive()
    engine.dispose()
    again.join(timeout=5)
    assert not again.is_alive()


def test_checkpointer_never_recreates_a_removed_database(tmp_path: Path) -> None:
    """Test suites remove database files while engines are still around; the checkpointer's
    own connection must not bring an empty file back."""
    path = tmp_path / "gone.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (a INTEGER)"))
    engine.dispose()
    for leftover in tmp_path.glob("gone.db*"):
        leftover.unlink(missing_ok=True)  # the engine's last connection may remove it first
    database._Checkpointer(str(path), threading.Lock()).checkpoint()
    assert not path.exists()


def test_in_memory_databases_get_no_checkpointer() -> None:
    before = set(checkpointers())
    engine = make_engine("sqlite:///:memory:")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (a INTEGER)"))
    assert not set(checkpointers()) - before
    engine.dispose()


def test_a_transaction_kept_waiting_past_the_busy_timeout_fails_as_a_pool_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool timeout in kind, so the APIs answer it as they answer one: 503, Retry-After."""
    monkeypatch.setattr(database, "BUSY_TIMEOUT_S", 0.1)
    engine = make_engine(f"sqlite:///{tmp_path}/busy.db")
    try:
        with engine.begin() as holder:
            holder.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            with pytest.raises(PoolTimeout, match="database busy"), engine.begin() as waiter:
                waiter.exec_driver_sql("INSERT INTO t VALUES (1)")
    finally:
        engine.dispose()


def test_a_write_lock_held_by_another_process_fails_the_begin_as_sqlalchemy_error_and_frees_the_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process (here a plain sqlite3 connection) holding SQLite's write lock past the
    busy timeout: the BEGIN fails as SQLAlchemy's OperationalError (what callers catch), and the
    process's transaction slot is free again, so the next transaction goes through."""
    monkeypatch.setattr(database, "BUSY_TIMEOUT_S", 0.1)
    path = tmp_path / "locked.db"
    engine = make_engine(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="locked"), engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        other.execute("COMMIT")
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT x FROM t").scalars().all() == [2]
    finally:
        other.close()
        engine.dispose()


def test_processes_opening_a_new_database_together_all_start(tmp_path: Path) -> None:
    """Every process of a service opens the same new SQLite file at its first start; each
    switches it to WAL. None may fail with "database is locked" (a consumer dying at start)."""
    failures: list[BaseException] = []
    for round_ in range(25):
        url = f"sqlite:///{tmp_path}/new-{round_}.db"
        engines = [make_engine(url) for _ in range(4)]
        start = threading.Barrier(len(engines))

        def open_and_write(engine: Any, n: int, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                with engine.begin() as connection:
                    connection.execute(text("CREATE TABLE IF NOT EXISTS t (n INTEGER)"))
                    connection.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
            except BaseException as error:
                failures.append(error)

        threads = [
            threading.Thread(target=open_and_write, args=(engine, n))
            for n, engine in enumerate(engines)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with engines[0].connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            rows = connection.execute(text("SELECT count(*) FROM t")).scalar()
        for engine in engines:
            engine.dispose()
        assert not failures, f"round {round_}: {failures[0]!r}"
        assert (mode, rows) == ("wal", len(engines))
