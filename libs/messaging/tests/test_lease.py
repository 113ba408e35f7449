"""One active process per role on PostgreSQL: a standby waits, and takes over when the holder's
session ends."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from devstack.polling import wait_for
from devstack.postgres import create_database, drop_database
from rx_messaging.database import make_engine
from rx_messaging.lease import Lease, run_as_sole
from sqlalchemy import text
from sqlalchemy.engine import Engine


@pytest.fixture
def pg(postgres_server: str) -> Iterator[Engine]:
    name = f"t_lease_{uuid.uuid4().hex[:12]}"
    engine = make_engine(create_database(postgres_server, name))
    yield engine
    engine.dispose()
    drop_database(postgres_server, name)


def terminate(engine: Engine, lease: Lease) -> None:
    """Cut the holder's connection, as a crash or a network failure would."""
    assert lease._connection is not None
    pid = lease._connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with engine.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_one_holder_at_a_time_and_a_standby_takes_over(pg: Engine) -> None:
    active, standby = Lease(pg, "writer"), Lease(pg, "writer")
    try:
        assert active.try_acquire()
        assert not standby.try_acquire()
        assert Lease(pg, "another role").try_acquire()  # roles do not exclude each other
        terminate(pg, active)
        assert not active.held()
        wait_for("the standby to take the lease", standby.try_acquire, timeout=10)
        assert not active.try_acquire()  # the old holder is now the standby
    finally:
        active.release()
        standby.release()


def test_run_as_sole_runs_the_work_only_while_holding_the_lease(pg: Engine) -> None:
    stop = threading.Event()
    running: list[str] = []
    ended: list[str] = []

    def work_of(name: str):
        def work(until: threading.Event) -> None:
            running.append(name)
            until.wait()
            ended.append(name)

        return work

    first = threading.Thread(target=run_as_sole, args=("writer", pg, work_of("first"), stop))
    first.start()
    wait_for("the first to be active", lambda: running == ["first"], timeout=10)
    blocker = Lease(pg, "writer")  # as a second process would: it cannot get in
    assert not blocker.try_acquire()
    blocker.release()
    second = threading.Thread(target=run_as_sole, args=("writer", pg, work_of("second"), stop))
    second.start()
    try:
        with pg.connect() as admin:  # the first's lease session dies
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(l.pid) FROM pg_locks l"
                    " WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()"
                )
            )
        wait_for("the first to stop", lambda: ended == ["first"], timeout=10)
        wait_for("a successor to be active", lambda: len(running) == 2, timeout=10)
        assert len(running) - len(ended) == 1  # never two at once
    finally:
        stop.set()
        first.join(timeout=10)
        second.join(timeout=10)
    assert not first.is_alive() and not second.is_alive()
