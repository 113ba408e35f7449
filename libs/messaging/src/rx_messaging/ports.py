"""The two interfaces the relay and consumers depend on; Kafka and in-memory both satisfy them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from .records import Record

WireRecord = tuple[bytes, bytes, list[tuple[str, bytes]]]


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

    def commit(self, positions: dict[tuple[str, int], int]) -> None: ...

    def seek(self, topic: str, partition: int, offset: int) -> None: ...

    def close(self) -> None: ...
