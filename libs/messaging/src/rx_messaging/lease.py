"""One active process per role, with standbys: a session-level PostgreSQL advisory lock, held on
a connection of the holder's own, names the active process; the others wait for it.

The lock lives as long as the holder's database session: a holder that dies, or whose
connection is cut, loses it, and a standby takes over within ``CHECK_S``. A holder checks its
session every ``CHECK_S`` and stops its work when the session is gone, so a successor and it
overlap for at most that long plus the batch in hand (work that must never overlap keeps its
own guard too, such as a locked row). On SQLite there is one process per role and no lease."""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from .database import end_session, is_postgres, unpooled
from .worker import touch

log = logging.getLogger(__name__)

LEASE_LOCKS = 0x52580020
"""Advisory lock namespace (first key) of leases; the second key is a hash of the role."""
CHECK_S = 1.0
"""How often a standby tries for the lease and a holder checks it still has it."""


class Lease:
    """The lease of ``role`` in ``engine``'s database."""

    def __init__(self, engine: Engine, role: str) -> None:
        self.engine, self.role = unpooled(engine), role
        self.key = zlib.crc32(role.encode()) & 0x7FFFFFFF
        self._connection: Connection | None = None

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True if this process holds it now."""
        if self._connection is not None:
            return self.held()
        try:
            connection = self.engine.connect()
        except Exception as exc:
            log.warning("%s: cannot reach the database for the lease: %s", self.role, exc)
            return False
        try:
            taken = connection.execute(
                text("SELECT pg_try_advisory_lock(:space, :key)"),
                {"space": LEASE_LOCKS, "key": self.key},
            ).scalar_one()
            connection.commit()
        except Exception as exc:
            log.warning("%s: trying for the lease failed: %s", self.role, exc)
            taken = False
        if not taken:
            end_session(connection)
            return False
        self._connection = connection
        return True

    def held(self) -> bool:
        """Whether the lease's session is still alive (and with it the lock)."""
        if self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
            self._connection.commit()
            return True
        except Exception as exc:
            log.warning("%s: lost the lease: %s", self.role, exc)
            self.release()
            return False

    def release(self) -> None:
        """Give the lease up (closing its session releases the lock)."""
        if self._connection is not None:
            end_session(self._connection)
        self._connection = None


def run_as_sole(
    role: str,
    engine: Engine,
    work: Callable[[threading.Event], None],
    stop: threading.Event,
    *,
    heartbeat: Path | None = None,
) -> None:
    """Run ``work`` only while this process holds the lease of ``role``, until ``stop``.

    ``work(until)`` must return soon after ``until`` is set: when ``stop`` is, or when the
    lease is lost (then this process waits as a standby again). While waiting, ``heartbeat``
    is touched, so a standby counts as healthy. On SQLite ``work`` simply runs."""
    if not is_postgres(engine):
        work(stop)
        return
    lease = Lease(engine, role)
    try:
        while not stop.is_set():
            if not lease.try_acquire():
                if heartbeat is not None:
                    touch(heartbeat)
                stop.wait(CHECK_S)
                continue
            log.info("%s: holding the lease; active", role)
            until = threading.Event()
            watcher = threading.Thread(
                target=_watch, args=(lease, stop, until), name=f"{role}-lease", daemon=True
            )
            watcher.start()
            try:
                work(until)
            finally:
                until.set()
                watcher.join()
            if not stop.is_set():
                log.info("%s: standing by", role)
    finally:
        lease.release()


def _watch(lease: Lease, stop: threading.Event, until: threading.Event) -> None:
    """Set ``until`` once ``stop`` is set or the lease is lost."""
    while not until.is_set():
        if stop.wait(CHECK_S) or not lease.held():
            until.set()
