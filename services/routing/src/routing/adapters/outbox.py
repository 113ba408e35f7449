"""Events staged for the relay in the session's transaction: queued in its write buffer, so
a consumer's batch writes its outbox rows with one insert."""

from __future__ import annotations

from collections.abc import Iterable

from rx_contracts import Envelope
from rx_messaging.outbox import queue_outbox
from sqlmodel import Session


class Outbox:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, envelope: Envelope, topics: Iterable[str]) -> None:
        """Stage ``envelope`` for each of ``topics`` (same event id on each)."""
        queue_outbox(self.session, envelope, topics)
