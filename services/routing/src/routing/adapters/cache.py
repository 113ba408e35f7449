"""The directory, rules and policies kept in memory by each process.

Reading every table for every event would cost more than routing it, so each process keeps
one :class:`~routing.domain.decision.Directory` and, per use, reads only the version counter
(one primary-key lookup, once per transaction) that every administrative change moves in its
own transaction. A consumer's batch is routed with the directory as it was when its
transaction began, as events a moment earlier were."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlmodel import Session

from ..domain.decision import Directory

_SEEN = "routing.directory"
"""session.info key: (the transaction, the directory it saw)."""


class DirectoryCache:
    """The newest Directory this process has seen; thread-safe for the API's workers."""

    def __init__(self) -> None:
        self._directory: Directory | None = None
        self._lock = threading.Lock()

    def get(
        self,
        session: Session,
        version: Callable[[], int],
        load: Callable[[int], Directory],
    ) -> Directory:
        """The directory as of ``session``'s transaction: ``version`` is read once per
        transaction (a consumer's batch), not once per event; ``load`` only when it moved."""
        seen: tuple[object, Directory] | None = session.info.get(_SEEN)
        if seen is not None and seen[0] is session.get_transaction():
            return seen[1]
        at_version = version()
        current = self._directory
        if current is None or current.version != at_version:
            with self._lock:
                current = load(at_version)
                self._directory = current
        session.info[_SEEN] = (session.get_transaction(), current)
        return current
