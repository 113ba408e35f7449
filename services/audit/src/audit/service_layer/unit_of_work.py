"""Unit of work: one database transaction over the chain, the log and the outbox.

Appends are queued in the transaction and written when it commits. In the consumer the unit of
work joins the transaction of a whole poll batch, which the consumer commits with the batch's
inbox rows."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from rx_contracts import Payload, wrap
from rx_messaging.outbox import add_to_outbox
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ..adapters.queries import LogQueries
from ..adapters.repository import ChainRepository

SOURCE = "/services/audit"
_JOINED = "audit.unit_of_work"


class UnitOfWork:
    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session_factory = session_factory
        self._owns_session = True

    @classmethod
    def joining(cls, session: Session) -> UnitOfWork:
        """A unit of work inside a transaction someone else commits: a consumer's, whose
        inbox rows must land in the same transaction as the entries. One per session, reused
        for every event of the batch."""
        uow: UnitOfWork | None = session.info.get(_JOINED)
        if uow is None:
            uow = cls(lambda: session)
            uow._owns_session = False
            uow._open()
            session.info[_JOINED] = uow
        return uow

    def __enter__(self) -> UnitOfWork:
        if self._owns_session:
            self._open()
        return self

    def _open(self) -> None:
        self.session = self._session_factory()
        self.chain = ChainRepository(self.session)
        self.log = LogQueries(self.session)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owns_session:
            self.session.close()  # discards anything uncommitted

    def add_to_outbox(self, event: Payload, topic: str) -> None:
        """Publish ``event`` to ``topic`` once this transaction commits (the relay sends it)."""
        add_to_outbox(self.session, wrap(event, source=SOURCE), [topic])

    def commit(self) -> None:
        """Write what was queued and commit; in a joined transaction, leave both to its
        owner (the consumer writes a batch's queued rows together, just before its commit)."""
        if self._owns_session:
            self.session.commit()


def session_factory(engine: Engine) -> Callable[[], Session]:
    return lambda: Session(engine, expire_on_commit=False)
