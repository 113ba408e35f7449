"""Use cases of the audit service: append an event, stage a checkpoint, verify the chain, read
the log. Each takes a unit of work."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from rx_contracts import ChainCheckpointed, Envelope
from rx_messaging.records import Record

from ..adapters.queries import EntryFilter
from ..domain.chain import Event, Head
from ..domain.errors import CheckpointsUnavailable, ReferralNotRecorded
from ..domain.verification import (
    EMPTY,
    HEADLESS,
    Checkpoint,
    ForgedCheckpoint,
    Progress,
    Verification,
    unvouched,
    verify_entries,
)
from .unit_of_work import UnitOfWork


def record_event(envelope: Envelope, record: Record, uow: UnitOfWork) -> int | None:
    """Append a consumed event at the head of the chain, whatever its type; return its
    sequence, or None if this unit of work's transaction appended that event id already (one
    event delivered on two topics in one batch). MalformedEvent for an event whose fields
    cannot be recorded faithfully."""
    event = Event.of(envelope, record.topic, record.partition, record.offset, record.value)
    with uow:
        entry = uow.chain.head().append(event, time.time_ns() // 1000)  # µs since the epoch
        if entry is None:
            return None
        uow.chain.add(entry)
        uow.commit()
    return entry.sequence


def stage_checkpoint(
    topic: str, uow: UnitOfWork, sign: Callable[[ChainCheckpointed], str]
) -> ChainCheckpointed | None:
    """Put the current head, signed with ``sign``, in the outbox for ``topic`` if events were
    appended since the last checkpoint; return what was staged."""
    with uow:
        head = uow.chain.stored_head(lock=True)
        if head is None or not head.checkpoint_due:
            return None
        unsigned = head.checkpoint(datetime.now(UTC))
        checkpoint = unsigned.model_copy(update={"signature": sign(unsigned)})
        uow.add_to_outbox(checkpoint, topic)
        uow.chain.mark_checkpointed(head.sequence)
        uow.commit()
    return checkpoint


def verify_chain(
    published: Callable[[str], Sequence[Checkpoint | ForgedCheckpoint]],
    uow: UnitOfWork,
    progress: Progress | None = None,
) -> Verification:
    """Verify the stored chain; ``published(chain_id)`` returns the checkpoints published to
    Kafka, genuine and forged, and may raise CheckpointsUnavailable. ``progress`` hears how
    many entries were checked, chunk by chunk."""
    with uow:
        head = uow.chain.stored_head()
        if head is None:
            return HEADLESS if uow.chain.count() else EMPTY
    # No transaction is held from here on: reading Kafka takes a while, and the scan reads
    # on a connection of its own.
    try:
        found = published(head.chain_id)
    except CheckpointsUnavailable as exc:
        return unvouched(_walk(head, (), (), uow, progress), exc)
    genuine = [c for c in found if isinstance(c, Checkpoint)]
    forged = [c for c in found if isinstance(c, ForgedCheckpoint)]
    return _walk(head, genuine, forged, uow, progress)


def _walk(
    head: Head,
    checkpoints: Sequence[Checkpoint],
    forged: Sequence[ForgedCheckpoint],
    uow: UnitOfWork,
    progress: Progress | None,
) -> Verification:
    with uow:
        return verify_entries(
            uow.chain.scan(),
            head.chain_id,
            (head.sequence, head.hash),
            checkpoints,
            progress,
            forged,
        )


def count_entries(uow: UnitOfWork) -> int:
    with uow:
        return uow.chain.count()


def find_entries(
    where: EntryFilter, after: int, limit: int, uow: UnitOfWork
) -> list[dict[str, Any]]:
    """Matching entries with a sequence above ``after``, in chain order, at most ``limit``."""
    with uow:
        return uow.log.find(where, after, limit)


def head_sequence(uow: UnitOfWork) -> int:
    """The newest sequence (0 for an empty chain)."""
    with uow:
        return uow.log.head_sequence()


def referral_timeline(
    referral_id: str, uow: UnitOfWork, organisation: str | None = None
) -> list[dict[str, Any]]:
    """A referral's journey across organisations: every event in the order it happened, with
    who acted and the time since submission. With ``organisation``, only if the referral
    involves that organisation (it sent or holds or held it)."""
    with uow:
        if organisation is not None and not uow.log.involves(referral_id, organisation):
            raise ReferralNotRecorded(
                f"no audit entries for referral {referral_id} involving {organisation}"
            )
        steps = uow.log.timeline(referral_id)
    if not steps:
        raise ReferralNotRecorded(f"no audit entries for referral {referral_id}")
    return steps
