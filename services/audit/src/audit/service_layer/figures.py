"""The evaluation figures of one API process: the fold of ``domain/figures.py``, brought up to
date from the log on every request, so a request costs only what was recorded since the last."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from ..domain.figures import RELEVANT, FigureState, aggregate, fold
from .unit_of_work import UnitOfWork

CHUNK = 5000


class FigureBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = FigureState()

    def figures(
        self, uow: UnitOfWork, since: datetime | None, until: datetime | None
    ) -> dict[str, Any]:
        """Every figure for the referrals submitted in ``[since, until)``, as of now."""
        with self._lock:
            self._catch_up(uow)
            return aggregate(self._state, since, until, datetime.now(UTC))

    def _catch_up(self, uow: UnitOfWork) -> None:
        """Fold in the relevant entries recorded since the state last looked, a chunk per
        transaction."""
        while True:
            with uow:
                rows = uow.log.figure_rows(RELEVANT, self._state.last_sequence, CHUNK)
            fold(self._state, rows)
            if len(rows) < CHUNK:
                return
