"""An in-memory broker for unit tests: same publisher and record-source interfaces as the
Kafka adapters. The contract suite in tests/contract runs the same scenarios against both
so this fake cannot drift from real Kafka semantics we rely on."""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .ports import RejoinNeeded, Revoked
from .records import PublishError, Record


@dataclass
class _Topic:
    partitions: list[list[Record]]


@dataclass
class InMemoryBroker:
    """Topics must be created first, as on our real broker (auto-creation is off)."""

    topics: dict[str, _Topic] = field(default_factory=dict)
    committed: dict[tuple[str, str, int], int] = field(default_factory=dict)
    down: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create_topic(self, name: str, partitions: int = 3) -> None:
        self.topics.setdefault(name, _Topic([[] for _ in range(partitions)]))

    def records(self, topic: str) -> list[Record]:
        """Every record of ``topic``, partition by partition (a test's view of the log)."""
        return [r for part in self.topics[topic].partitions for r in part]

    def append(
        self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        with self._lock:
            if self.down:
                raise PublishError("broker unavailable")
            if topic not in self.topics:
                raise PublishError(f"unknown topic {topic}")
            parts = self.topics[topic].partitions
            # Same key, same partition — like Kafka's default partitioner (not the same hash).
            index = zlib.crc32(key) % len(parts)
            parts[index].append(Record(topic, index, len(parts[index]), key, value, list(headers)))


class InMemoryPublisher:
    """Publisher against an InMemoryBroker."""

    def __init__(self, broker: InMemoryBroker) -> None:
        self.broker = broker

    def publish(
        self,
        topic: str,
        records: Sequence[tuple[bytes, bytes, list[tuple[str, bytes]]]],
        timeout: float = 15,
    ) -> None:
        for key, value, headers in records:
            self.broker.append(topic, key, value, headers)

    def publish_many(
        self,
        batches: Mapping[str, Sequence[tuple[bytes, bytes, list[tuple[str, bytes]]]]],
        timeout: float = 15,
    ) -> None:
        for topic, records in batches.items():
            self.publish(topic, records, timeout)

    def close(self) -> None:
        pass


class InMemoryRecordSource:
    """The only member of its group: gets every partition of its topics, starting from the
    group's committed offsets (earliest when none)."""

    def __init__(
        self,
        broker: InMemoryBroker,
        group_id: str,
        *,
        topics: Iterable[str] = (),
        pattern: str | None = None,
        max_records: int = 200,
    ) -> None:
        self.broker = broker
        self.group_id = group_id
        self._topics = list(topics)
        self._pattern = re.compile(pattern) if pattern else None
        self._max = max_records
        self._positions: dict[tuple[str, int], int] = {}
        self._revoked: Revoked | None = None
        self._evicted = False

    def _assigned(self) -> list[tuple[str, int]]:
        names = [n for n in self.broker.topics if self._pattern and self._pattern.fullmatch(n)]
        names += [n for n in self._topics if n in self.broker.topics]
        return [(n, p) for n in names for p in range(len(self.broker.topics[n].partitions))]

    def poll(self, timeout: float) -> list[Record]:
        if self._evicted:
            if timeout <= 0:
                return []  # kafka-python (pattern subscription) gets nowhere near a rejoin
            self._rejoin()
        out: list[Record] = []
        for topic, partition in self._assigned():
            pos = self._positions.get(
                (topic, partition), self.broker.committed.get((self.group_id, topic, partition), 0)
            )
            log = self.broker.topics[topic].partitions[partition]
            batch = log[pos : pos + self._max - len(out)]
            out.extend(batch)
            self._positions[(topic, partition)] = pos + len(batch)
        return out

    def commit(self, positions: dict[tuple[str, int], int]) -> None:
        if self._evicted:
            raise RejoinNeeded("not part of an active group")
        for (topic, partition), offset in positions.items():
            self.broker.committed[(self.group_id, topic, partition)] = offset

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self._positions[(topic, partition)] = offset

    def when_revoked(self, callback: Revoked) -> None:
        self._revoked = callback

    def rebalance(self) -> None:
        """What a rebalance does to this member, as Kafka does it (eager): every partition is
        revoked (the callback hears them first and the offsets it returns are committed),
        and reading resumes from the committed offsets."""
        if self._revoked is not None:
            self.commit(self._revoked(self._assigned()))
        self._positions.clear()

    def evict(self) -> None:
        """What being put out of the group does to this member (its session expired while
        the broker was away or the process stalled): commits are refused with
        :class:`RejoinNeeded` until a poll that may wait rejoins; the rejoin hands every
        partition to the callback as lost (nothing it returns is committed: a new owner may
        have them) and reading resumes from the committed offsets."""
        self._evicted = True

    def _rejoin(self) -> None:
        if self._revoked is not None:
            self._revoked(self._assigned())
        self._positions.clear()
        self._evicted = False

    def close(self) -> None:
        self._positions.clear()
