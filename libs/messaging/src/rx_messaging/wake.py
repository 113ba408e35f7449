"""Waking the outbox relay when a transaction that staged outbox rows commits, so events leave
within milliseconds and an idle relay does not poll.

Writers (API requests, consumers, the clock) call :func:`announce` when they stage outbox rows
(``rx_messaging.outbox`` does it for them); the relay waits on :func:`commit_signal`:

- **SQLite**: after the transaction commits, the writer sends one datagram to a Unix socket in
  Linux's abstract namespace named after the database file, which the relay has bound. Sending
  is a single non-blocking system call that never fails the writer: nobody listening (no relay
  yet) or the relay's queue full (it has wake-ups waiting already) both mean the relay will
  look anyway. One relay per SQLite file binds the name; a second one polls.
- **PostgreSQL**: ``NOTIFY`` in the writing transaction, which PostgreSQL delivers only if it
  commits; the relay ``LISTEN``s on a connection of its own.
- Anything else (another OS or database): the relay polls.

Either way the relay still looks every ``fallback`` seconds, so a lost wake-up costs latency,
never an event: the outbox table stays the only source of truth.

The same goes for other work a commit can make due sooner, on a channel of its own (the routing
service's SLA clocks: :data:`CLOCKS`), announced with ``announce(session, channel)``.

A transaction on a bare ``Connection`` (no Session around it: the referrals API's) announces
with ``announce(connection)`` and commits with :func:`commit`, which sends the wake-ups once the
commit is done; PostgreSQL's NOTIFY goes out in the transaction at once."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import select
import socket
import sys
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "rx_outbox"
"""The outbox relay's channel (one per database: each service has its own)."""
CLOCKS = "rx_clocks"
"""The SLA clock worker's channel: a clock was started or changed."""

_PENDING = "rx_messaging.wake.pending"
_hooked = False
_hooked_connections = False
_sender: socket.socket | None = None


def announce(session: Session | Connection, channel: str = CHANNEL) -> None:
    """This transaction staged outbox rows (or other work for ``channel``'s waiter): wake the
    relay (the waiter) once it commits (a bare connection's: committed by :func:`commit`)."""
    if isinstance(session, Connection):
        _announce_on(session, channel)
        return
    pending: set[str] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = set()
    if channel not in pending:
        pending.add(channel)
        _hook_sessions()


def _hook_sessions() -> None:
    """Listen to every session's commits, once per process: a flag check per commit is cheaper
    than tying listeners to each request's session."""
    global _hooked
    if not _hooked:
        event.listen(Session, "before_commit", _before_commit)
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_soft_rollback", _after_rollback)
        _hooked = True


def _announce_on(connection: Connection, channel: str) -> None:
    # Kept with the DBAPI connection (``Connection.info``), which outlives this Connection in
    # the pool: emptied when the transaction ends (commit() or the listeners below).
    pending: set[str] | None = connection.info.get(_PENDING)
    if pending is None:
        pending = connection.info[_PENDING] = set()
        _hook_connections()
    if channel not in pending:
        pending.add(channel)
        if connection.dialect.name == "postgresql":
            # Queued with the transaction: delivered when it commits, dropped if it does not.
            connection.exec_driver_sql(f"NOTIFY {channel}")


def commit(connection: Connection) -> None:
    """Commit ``connection``'s transaction, then wake the waiters it announced (SQLite; on
    PostgreSQL its NOTIFYs are delivered by the commit itself)."""
    pending: set[str] | None = connection.info.pop(_PENDING, None)
    connection.commit()
    if pending and connection.dialect.name == "sqlite":
        database = connection.engine.url.database
        for channel in pending:
            _send(database, channel)


def _hook_connections() -> None:
    """Forget a bare connection's announcements when its transaction ends other than through
    :func:`commit` (a rollback, or a commit of its own: the relay then finds the rows when
    it next looks), so none is carried into the next transaction on that DBAPI connection."""
    global _hooked_connections
    if not _hooked_connections:
        event.listen(Engine, "commit", _forget)
        event.listen(Engine, "rollback", _forget)
        _hooked_connections = True


def _forget(connection: Connection) -> None:
    connection.info.pop(_PENDING, None)


def _outermost(session: Session) -> bool:
    return not session.in_nested_transaction()


def _before_commit(session: Session) -> None:
    if session.info.get(_PENDING) and _outermost(session):
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            # Queued with the transaction: delivered when it commits, dropped if it does not.
            for channel in sorted(session.info[_PENDING]):
                connection.exec_driver_sql(f"NOTIFY {channel}")


def _after_commit(session: Session) -> None:
    if session.info.get(_PENDING) and _outermost(session):
        channels = session.info.pop(_PENDING)
        bind = session.get_bind()
        if bind.dialect.name == "sqlite":
            for channel in channels:
                _send(bind.engine.url.database, channel)


def _after_rollback(session: Session, previous: Any) -> None:
    if previous.parent is None:  # the whole transaction: nothing of it will be published
        session.info.pop(_PENDING, None)


def _send(database: str | None, channel: str = CHANNEL) -> None:
    address = _address(database, channel)
    if address is None:
        return
    global _sender
    try:
        if _sender is None:
            _sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            _sender.setblocking(False)
        _sender.sendto(b"!", address)
    except OSError:
        pass  # no relay listening, or it has wake-ups queued already: it will look anyway


def _address(database: str | None, channel: str = CHANNEL) -> bytes | None:
    """The abstract socket name of ``channel`` for a SQLite file (None: in memory, or not
    Linux)."""
    if not database or database == ":memory:" or not sys.platform.startswith("linux"):
        return None
    if not os.path.isabs(database):
        return _socket_name(database, channel)  # from the working directory of the moment
    return _socket_name_of_absolute(database, channel)


def _socket_name(database: str, channel: str) -> bytes:
    digest = hashlib.blake2b(str(Path(database).resolve()).encode(), digest_size=12).hexdigest()
    return f"\0{channel.replace('_', '-')}-{digest}".encode()


_socket_name_of_absolute = functools.lru_cache(maxsize=64)(_socket_name)
"""Worked out once per file and channel: a writer sends after every commit, and resolving the
path costs a system call per component of it."""


class CommitSignal(Protocol):
    """What the relay waits on between batches."""

    wakes: bool
    """Whether commits wake :meth:`wait` (False: it only times out, so poll often)."""

    def wait(self, timeout: float) -> bool:
        """Block until a commit is announced, :meth:`interrupt` is called or ``timeout``
        seconds pass; True if a commit was announced."""

    def interrupt(self) -> None:
        """Make a waiting (or the next) :meth:`wait` return now; safe in a signal handler."""

    def close(self) -> None: ...


class _Waiter:
    """select() on a source of wake-ups plus a self-pipe for :meth:`interrupt`."""

    wakes = True

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def _sources(self) -> list[Any]:
        return []

    def _drain(self, source: Any) -> bool:
        return False

    def wait(self, timeout: float) -> bool:
        sources = self._sources()
        try:
            ready, _, _ = select.select([self._read, *sources], [], [], timeout)
        except (OSError, ValueError):
            return False
        if self._read in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._read, 4096)
        return any(self._drain(source) for source in ready if source is not self._read)

    def interrupt(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._write, b"!")

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


class _Polling(_Waiter):
    """No wake-ups to be had: the relay polls (every ``timeout`` of :meth:`wait`)."""

    wakes = False


class _Datagrams(_Waiter):
    """SQLite: the abstract Unix socket writers send to after each commit."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._socket = sock

    def _sources(self) -> list[Any]:
        return [self._socket]

    def _drain(self, source: Any) -> bool:
        # Many commits, one wake-up: the relay reads every pending row in one batch anyway.
        with contextlib.suppress(BlockingIOError):
            while self._socket.recv(64):
                pass
        return True

    def close(self) -> None:
        self._socket.close()
        super().close()


class _Notifications(_Waiter):
    """PostgreSQL: LISTEN on a connection of the relay's own, reconnecting after a failure."""

    def __init__(self, engine: Engine, channel: str = CHANNEL) -> None:
        super().__init__()
        self._engine = engine
        self._channel = channel
        self._connection: Any = None

    def _connect(self) -> Any:
        if self._connection is None:
            try:
                raw = self._engine.raw_connection()
                connection: Any = raw.dbapi_connection
                raw.detach()  # ours for good, not the pool's
                connection.autocommit = True
                connection.execute(f"LISTEN {self._channel}")
                self._connection = connection
            except Exception as exc:  # the database is away: poll until it is back
                log.warning("%s wake-ups: cannot LISTEN (%s); polling", self._channel, exc)
        return self._connection

    def _sources(self) -> list[Any]:
        connection = self._connect()
        return [connection.fileno()] if connection is not None else []

    def _drain(self, source: Any) -> bool:
        try:
            for _ in self._connection.notifies(timeout=0):
                pass
        except Exception:
            self._drop()
        return True

    def _drop(self) -> None:
        with contextlib.suppress(Exception):
            self._connection.close()
        self._connection = None

    def close(self) -> None:
        if self._connection is not None:
            self._drop()
        super().close()


def commit_signal(engine: Engine, channel: str = CHANNEL) -> CommitSignal:
    """What a relay for ``engine``'s outbox (or another waiter on ``channel``) waits on:
    wake-ups from committing writers where the database and platform allow, else polling."""
    if engine.dialect.name == "postgresql":
        return _Notifications(engine, channel)
    address = _address(engine.url.database, channel) if engine.dialect.name == "sqlite" else None
    if address is None:
        return _Polling()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        log.warning("%s wake-ups: %s (another waiter on this database?); polling", channel, exc)
        return _Polling()
    sock.setblocking(False)
    return _Datagrams(sock)
