"""The directory, rules and policies kept in memory by each process.

Reading every table for every event would cost more than routing it, so each process keeps
one :class:`~routing.domain.model.Directory` and, per use, reads only the version counter
(one primary-key lookup) that every administrative change moves in its own transaction."""

from __future__ import annotations

import threading

from sqlmodel import Session

from ..domain.model import Directory
from . import directory_store


class DirectoryCache:
    """The newest Directory this process has seen; thread-safe for the API's workers."""

    def __init__(self) -> None:
        self._directory: Directory | None = None
        self._lock = threading.Lock()
        self.loads = 0
        """How many times the tables were read (tests check the cache is used)."""

    def get(self, session: Session) -> Directory:
        """The directory as of ``session``'s transaction."""
        version = directory_store.version(session)
        current = self._directory
        if current is not None and current.version == version:
            return current
        with self._lock:
            loaded = directory_store.load(session, version)
            self._directory = loaded
            self.loads += 1
            return loaded
