"""The evaluation figures of one API process: the fold of ``domain/referral_facts.py``, brought
up to date from the log on every request, so a request costs only what was recorded since the
last."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from ..domain.figures import Selection, aggregate
from ..domain.referral_facts import RELEVANT, FigureState, fold
from .unit_of_work import UnitOfWork

CHUNK = 5000


class FigureBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = FigureState()

    def figures(self, uow: UnitOfWork, selection: Selection) -> dict[str, Any]:
        """Every figure for the referrals ``selection`` admits, as of now."""
        involving = None
        if selection.organisation is not None:
            with uow:
                involving = uow.log.referrals_involving(selection.organisation)
        with self._lock:
            self._catch_up(uow)
            return aggregate(self._state, selection, datetime.now(UTC), involving)

    def _catch_up(self, uow: UnitOfWork) -> None:
        """Fold in the relevant entries recorded since the state last looked, a chunk per
        transaction."""
        while True:
            with uow:
                rows = uow.log.figure_rows(RELEVANT, self._state.last_sequence, CHUNK)
            fold(self._state, rows)
            if len(rows) < CHUNK:
                return
