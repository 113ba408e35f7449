"""The directory, rules and policies kept in memory by each process.

Reading every table for every event would cost more than routing it, so each process keeps
one :class:`~routing.domain.model.Directory` and, per use, reads only the version counter
(one primary-key lookup, once per transaction) that every administrative change moves in its
own transaction. A consumer's batch is routed with the directory as it was when its
transaction began, as events a moment earlier were."""

from __future__ import annotations

import threading

from sqlmodel import Session

from ..domain.model import Directory
from . import directory_store

_SEEN = "routing.directory"
"""session.info key: (the transaction, the directory it saw)."""


class DirectoryCache:
    """The newest Directory this process has seen; thread-safe for the API's workers."""

    def __init__(self) -> None:
        self._directory: Directory | None = None
        self._lock = threading.Lock()
        self.loads = 0
        """How many times the tables were read (tests check the cache is used)."""

    def get(self, session: Session) -> Directory:
        """The directory as of ``session``'s transaction: the version counter is read once per
        transaction (a consumer's batch), not once per event."""
        seen: tuple[object, Directory] | None = session.info.get(_SEEN)
        if seen is not None and seen[0] is session.get_transaction():
            return seen[1]
        version = directory_store.version(session)
        current = self._directory
        if current is None or current.version != version:
            with self._lock:
                current = directory_store.load(session, version)
                self._directory = current
                self.loads += 1
        session.info[_SEEN] = (session.get_transaction(), current)
        return current
