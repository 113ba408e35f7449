"""The two interfaces the relay and consumers depend on; Kafka and in-memory both satisfy them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from .records import Record

WireRecord = tuple[bytes, bytes, list[tuple[str, bytes]]]
Revoked = Callable[[list[tuple[str, int]]], dict[tuple[str, int], int]]
"""Told the partitions a rebalance takes away; returns offsets to commit for them first."""


class RejoinNeeded(Exception):
    """An offset commit refused because this member is not a settled member of its group: it
    was put out (its session expired while the broker was away or the process stalled) or a
    rebalance is under way. Not a fault to back off from: the member rejoins inside its next
    poll, provided that poll is allowed to wait for it."""


class Publisher(Protocol):
    def publish(self, topic: str, records: Sequence[WireRecord], timeout: float = 15) -> None:
        """Publish all or raise PublishError."""

    def close(self) -> None: ...


class BatchPublisher(Publisher, Protocol):
    def publish_many(
        self, batches: Mapping[str, Sequence[WireRecord]], timeout: float = 15
    ) -> None:
        """Publish every topic's records in one go (one acknowledgement to wait for, not one
        per topic); all or raise PublishError."""


class RecordSource(Protocol):
    def poll(self, timeout: float) -> list[Record]: ...

    def commit(self, positions: dict[tuple[str, int], int]) -> None:
        """Commit ``(topic, partition) -> next offset to read``; :class:`RejoinNeeded` while
        this member is out of its group or rebalancing."""

    def seek(self, topic: str, partition: int, offset: int) -> None: ...

    def when_revoked(self, callback: Revoked) -> None:
        """Have ``callback`` hear the (topic, partition)s a rebalance is about to take away and
        commit the offsets it returns for them while this member still owns them."""

    def close(self) -> None: ...
