"""Verifying the chain: recompute every hash in sequence order, compare with the published
checkpoints, and name the first entry that does not fit. Pure: it walks entry tuples that the
adapters read.

What each kind of tampering looks like here:
- an edited payload: its digest no longer matches (that entry);
- an edited field (type, actor, time, …): the entry's hash no longer matches (that entry);
- a deleted entry: a gap in the sequence (the missing one);
- reordered or inserted entries: a broken link to the previous hash (the first one moved);
- the last entries deleted, or the whole chain re-hashed after an edit, leave a chain that is
  consistent in itself: only the checkpoints published to Kafka betray it.

Only genuine checkpoints (signed with a published checkpoint key, see ``signing.py``) vouch
for the chain. Any other on the topic is *forged* — someone published a head without the key —
and is reported as such, apart from whether the chain itself holds: a forged checkpoint over
an intact chain is a forgery, not tampering with the log."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from .chain import NONE, genesis

ENTRY_FIELDS = (
    "sequence",
    "event_id",
    "topic",
    "partition",
    "offset",
    "type",
    "referral_id",
    "actor_org",
    "occurred_at_us",
    "recorded_at_us",
    "payload",
    "payload_digest",
    "prev_hash",
    "hash",
)
"""The fields of each entry tuple :func:`verify_entries` walks, in this order."""

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Checkpoint:
    """A published chain head, as read back from the topic."""

    sequence: int
    hash: str
    checkpointed_at: datetime
    offset: int


@dataclass(frozen=True)
class ForgedCheckpoint:
    """A checkpoint on the topic that the audit service did not sign: no signature, one that
    does not verify, one by a key that is not published, or one over another checkpoint."""

    sequence: int
    hash: str
    checkpointed_at: datetime
    offset: int
    kid: str | None
    """The key its signature names, if it has one."""
    problem: str


class Verdict(StrEnum):
    """What verification found, worst first."""

    TAMPERED = "tampered"
    """An entry does not fit: edited, deleted, inserted, moved, or the chain was rewritten."""
    FORGED_CHECKPOINT = "forged-checkpoint"
    """The chain fits the genuine checkpoints, but the topic carries forged ones."""
    UNVOUCHED = "unvouched"
    """The chain is consistent, but the checkpoints could not be read."""
    INTACT = "intact"


@dataclass(frozen=True)
class Verification:
    """The outcome: ``ok`` only if every entry fits, every genuine checkpoint matches and no
    checkpoint is forged."""

    ok: bool
    entries: int
    head_sequence: int
    head_hash: str
    chain_id: str | None = None
    checkpoints: int = 0
    """How many genuine published checkpoints were compared."""
    first_broken: int | None = None
    problem: str | None = None
    forged: tuple[ForgedCheckpoint, ...] = ()
    """Checkpoints on the topic for this chain that the audit service did not sign."""

    @property
    def verdict(self) -> Verdict:
        if self.ok:
            return Verdict.INTACT
        if self.first_broken is not None:
            return Verdict.TAMPERED
        if self.forged:
            return Verdict.FORGED_CHECKPOINT
        return Verdict.UNVOUCHED


EMPTY = Verification(True, 0, 0, "")
HEADLESS = Verification(False, 0, 0, "", None, 0, 1, "the chain head row is missing")
"""Entries without a head row: the row was deleted, or the entries were inserted."""


def unvouched(result: Verification, reason: object) -> Verification:
    """``result`` when the checkpoints could not be read: an intact-looking chain is still not
    called intact, since missing entries at its end cannot be ruled out."""
    if not result.ok:
        return result
    return replace(
        result,
        ok=False,
        problem=f"the chain is consistent, but without the checkpoints missing entries at "
        f"its end cannot be ruled out: {reason}",
    )


@dataclass
class _Broken(Exception):
    sequence: int
    problem: str


@dataclass
class _Walk:
    """State of one pass over the chain."""

    chain_id: str
    checkpoints: dict[int, Checkpoint]
    prev: str = ""
    expected: int = 1
    vouched: int = 0
    """The newest sequence a matching checkpoint vouches for."""
    compared: int = 0

    def __post_init__(self) -> None:
        self.prev = genesis(self.chain_id)


def check_rows(walk: _Walk, rows: Sequence[Any]) -> None:
    """The hot loop: one sha256 for the payload, one for the entry, no parsing."""
    sha256 = hashlib.sha256
    checkpoints = walk.checkpoints
    prev, expected = walk.prev, walk.expected
    for (
        seq,
        event_id,
        topic,
        partition,
        offset,
        type_,
        referral_id,
        actor,
        occurred,
        recorded,
        payload,
        digest,
        prev_hash,
        entry_hash,
    ) in rows:
        if seq != expected:
            raise _Broken(expected, f"entry {expected} is missing (the next one is {seq})")
        if prev_hash != prev:
            raise _Broken(seq, f"does not link to entry {seq - 1} (moved, inserted or edited)")
        if sha256(payload.encode()).hexdigest() != digest:
            raise _Broken(seq, "the payload does not match its digest (edited)")
        # chain.entry_hash's text, inlined: no function call per entry in the hot loop.
        text = (
            f"{prev_hash}\x1f{seq}\x1f{event_id}\x1f{topic}\x1f{partition}\x1f{offset}"
            f"\x1f{type_}\x1f{referral_id or NONE}\x1f{actor or NONE}"
            f"\x1f{occurred}\x1f{recorded}\x1f{digest}"
        )
        if text.count("\x1f") != 11 or sha256(text.encode()).hexdigest() != entry_hash:
            raise _Broken(seq, "the entry's hash does not match its fields (edited)")
        checkpoint = checkpoints.get(seq)
        if checkpoint is not None:
            walk.compared += 1
            if checkpoint.hash != entry_hash:
                raise _Broken(
                    walk.vouched + 1,
                    f"entries {walk.vouched + 1}–{seq} differ from what the checkpoint published "
                    f"at {checkpoint.checkpointed_at.isoformat()} vouches for: the chain was "
                    "rewritten and re-hashed",
                )
            walk.vouched = seq
        prev, expected = entry_hash, seq + 1
    walk.prev, walk.expected = prev, expected


def verify_entries(
    chunks: Iterable[Sequence[Any]],
    chain_id: str,
    head: tuple[int, str],
    checkpoints: Sequence[Checkpoint] = (),
    progress: Progress | None = None,
    forged: Sequence[ForgedCheckpoint] = (),
) -> Verification:
    """Walk ``chunks`` of entry tuples (:data:`ENTRY_FIELDS` order, by sequence) against the
    head row (sequence, hash) and the genuine published ``checkpoints`` of chain
    ``chain_id``; ``forged``: the checkpoints of the chain on the topic that are not genuine
    (they vouch for nothing, and make the outcome not ok)."""
    found = tuple(forged)
    by_sequence: dict[int, Checkpoint] = {}
    walk = _Walk(chain_id, by_sequence)
    head_sequence, head_hash = head
    try:
        for checkpoint in checkpoints:
            known = by_sequence.setdefault(checkpoint.sequence, checkpoint)
            if known.hash != checkpoint.hash:
                raise _Broken(checkpoint.sequence, "two published checkpoints disagree here")
        for rows in chunks:
            check_rows(walk, rows)
            if progress is not None:
                progress(len(rows))
        count = walk.expected - 1
        if head_sequence > count:
            raise _Broken(count + 1, f"entries {count + 1}–{head_sequence} are missing (head row)")
        if head_sequence and head_sequence == count and head_hash != walk.prev:
            raise _Broken(count, "the head row does not match the last entry")
        newest = max(by_sequence, default=0)
        if newest > count:
            published = by_sequence[newest].checkpointed_at.isoformat()
            raise _Broken(
                count + 1,
                f"entries {count + 1}–{newest} are missing: a checkpoint published at "
                f"{published} covers {newest} entries, the database has {count}",
            )
    except _Broken as broken:
        return Verification(
            False,
            walk.expected - 1,
            head_sequence,
            head_hash,
            chain_id,
            walk.compared,
            broken.sequence,
            broken.problem,
            found,
        )
    if found:
        first = min(found, key=lambda f: f.offset)
        return Verification(
            False,
            count,
            head_sequence,
            head_hash,
            chain_id,
            walk.compared,
            problem=f"{len(found)} forged checkpoint(s) on the topic: the first, at offset "
            f"{first.offset}, claims entry {first.sequence}: {first.problem}; the entries fit "
            "the genuine checkpoints",
            forged=found,
        )
    return Verification(True, count, head_sequence, head_hash, chain_id, walk.compared)
