"""Fault injection for the reliability tests, installed by ``bootstrap`` only when
``RX_FAULT_EXIT_AFTER_COMMIT`` is set (refused outside development, see ``config``)."""

from __future__ import annotations

import os

from .adapters.idempotency import IdempotentResponse
from .service_layer.unit_of_work import UnitOfWork

EXIT_CODE = 70


class ExitAfterIdempotentCommit(UnitOfWork):
    """Exits the process hard right after an idempotent POST commits, before it answers: the
    change is stored, the answer lost, and the caller must retry with the same key."""

    def commit(self, remember: IdempotentResponse | None = None) -> None:
        super().commit(remember)
        if remember is not None:
            os._exit(EXIT_CODE)
