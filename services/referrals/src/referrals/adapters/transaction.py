"""A unit of work's transaction on a bare SQLAlchemy ``Connection``.

The referrals API's writes and reads go straight to the driver (``rx_messaging.fastsql``) on
the transaction's connection; a Session around them only added its own begin, commit and
close to every request. So the transaction is the connection's, and a Session joins it only
when a query needs the ORM (attachments, worklists, the ledger's reads). Like a Session's,
it begins on first use (a new referral touches the database only at its commit) and the relay
is woken when a transaction that staged outbox rows commits (``rx_messaging.wake``)."""

from __future__ import annotations

from typing import Any

from rx_messaging import fastsql, wake
from rx_messaging.outbox import OUTBOX
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session


class Transaction:
    """What the repositories use of a Session, on one connection and its transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None
        self._orm: Session | None = None

    def connection(self) -> Connection:
        """The transaction's connection, begun on first use (on SQLite: BEGIN IMMEDIATE and
        the process's transaction slot, ``rx_messaging.database``)."""
        if self._connection is None:
            connection = self._engine.connect()
            try:
                connection.begin()
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def orm(self) -> Session:
        """A Session in this transaction, for the queries that need the ORM."""
        if self._orm is None:
            self._orm = Session(bind=self.connection(), expire_on_commit=False)
        return self._orm

    def add(self, instance: Any) -> None:
        self.orm().add(instance)

    def get(self, entity: Any, ident: Any) -> Any:
        return self.orm().get(entity, ident)

    def exec(self, statement: Any) -> Any:
        return self.orm().exec(statement)

    def insert_outbox_rows(self, rows: list[dict[str, Any]]) -> None:
        """``rx_messaging.outbox.insert_outbox_rows`` on this transaction's connection."""
        if rows:
            connection = self.connection()
            fastsql.execute_many(connection, fastsql.insert_into(OUTBOX, tuple(rows[0])), rows)
            wake.announce(connection)  # the relay wakes when this transaction commits

    def flush(self) -> None:
        if self._orm is not None:
            self._orm.flush()

    def commit(self) -> None:
        """Write what the ORM holds, commit, and wake the relay if outbox rows were staged.
        The next use begins a new transaction."""
        if self._connection is None:
            return  # nothing was begun: nothing to commit
        self.flush()
        wake.commit(self._connection)
        self.close()

    def close(self) -> None:
        """End the transaction; anything uncommitted is rolled back."""
        if self._orm is not None:
            self._orm.close()
            self._orm = None
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.close()
