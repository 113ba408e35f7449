"""The record shape every publisher and record source speaks, Kafka or in-memory."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Record:
    """One consumed record: where it came from plus key, value and headers."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class PublishError(RuntimeError):
    """The broker did not acknowledge a record; the caller keeps it and retries later."""
