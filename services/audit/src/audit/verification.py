"""Verifying the chain: recompute every hash in sequence order, compare with the published
checkpoints, and name the first entry that does not fit.

What each kind of tampering looks like here:
- an edited payload: its digest no longer matches (that entry);
- an edited field (type, actor, time, …): the entry's hash no longer matches (that entry);
- a deleted entry: a gap in the sequence (the missing one);
- reordered or inserted entries: a broken link to the previous hash (the first one moved);
- the last entries deleted, or the whole chain re-hashed after an edit, leave a chain that is
  consistent in itself: only the checkpoints published to Kafka betray it."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rx_messaging import fastsql
from sqlalchemy import Select, bindparam, func, literal_column, select
from sqlalchemy.engine import Engine

from .chain import NONE, genesis
from .checkpoints import Checkpoint, CheckpointsUnavailable
from .tables import ENTRY, HEAD

COLUMNS = (
    ENTRY.c.sequence,
    ENTRY.c.event_id,
    ENTRY.c.topic,
    ENTRY.c.partition,
    ENTRY.c.offset,
    ENTRY.c.type,
    ENTRY.c.referral_id,
    ENTRY.c.actor_org,
    ENTRY.c.occurred_at_us,
    ENTRY.c.recorded_at_us,
    ENTRY.c.payload,
    ENTRY.c.payload_digest,
    ENTRY.c.prev_hash,
    ENTRY.c.hash,
)
CHUNK = 5000
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Verification:
    """The outcome: ``ok`` only if every entry fits and every checkpoint matches."""

    ok: bool
    entries: int
    head_sequence: int
    head_hash: str
    chain_id: str | None = None
    checkpoints: int = 0
    """How many published checkpoints were compared."""
    first_broken: int | None = None
    problem: str | None = None


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


@functools.cache
def _scan_query(chunk: int) -> Select[Any]:
    return (
        select(*COLUMNS)
        .where(ENTRY.c.sequence > bindparam("after"))
        .order_by(ENTRY.c.sequence)
        .limit(literal_column(str(int(chunk))))
    )


def scan(engine: Engine, chunk: int = CHUNK) -> Iterator[Sequence[Any]]:
    """Entries as the driver's plain tuples in sequence order, ``chunk`` at a time.

    Read through a raw driver cursor: SQLAlchemy's result rows would cost more than the
    hashing. On SQLite that also means no transaction is held, so appends carry on while a
    long chain is verified; the chain is append-only, so each chunk still sees whole
    entries."""
    last, query = 0, _scan_query(chunk)
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            while True:
                rows = fastsql.fetch_tuples(cursor, conn.dialect, query, {"after": last})
                if not rows:
                    return
                yield rows
                last = rows[-1][0]
        finally:
            cursor.close()


def verify_chain(
    chunks: Iterable[Sequence[Any]],
    chain_id: str,
    head: tuple[int, str],
    checkpoints: Sequence[Checkpoint] = (),
    progress: Progress | None = None,
) -> Verification:
    """Walk ``chunks`` of entry tuples (``COLUMNS`` order) against the head row and the
    published ``checkpoints`` of chain ``chain_id``."""
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
        )
    return Verification(True, count, head_sequence, head_hash, chain_id, walk.compared)


def read_head(engine: Engine) -> tuple[str, int, str] | None:
    """(chain id, sequence, hash) of the head row; None for an empty chain."""
    with engine.connect() as conn:
        row = conn.execute(select(HEAD.c.chain_id, HEAD.c.sequence, HEAD.c.hash)).first()
    return None if row is None else (row.chain_id, row.sequence, row.hash)


def entry_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ENTRY)).scalar_one())


def verify_database(
    engine: Engine,
    checkpoints: Callable[[str], Sequence[Checkpoint]],
    progress: Progress | None = None,
) -> Verification:
    """Verify the chain stored in ``engine``'s database; ``checkpoints(chain_id)`` returns the
    published checkpoints (read from Kafka) and may raise ``CheckpointsUnavailable``."""
    head = read_head(engine)
    if head is None:
        if entry_count(engine):
            return Verification(False, 0, 0, "", None, 0, 1, "the chain head row is missing")
        return Verification(True, 0, 0, "")
    chain_id, head_sequence, head_hash = head
    try:
        published = checkpoints(chain_id)
    except CheckpointsUnavailable as exc:
        result = verify_chain(scan(engine), chain_id, (head_sequence, head_hash), (), progress)
        if not result.ok:
            return result
        return replace(
            result,
            ok=False,
            problem=f"the chain is consistent, but without the checkpoints missing entries at "
            f"its end cannot be ruled out: {exc}",
        )
    return verify_chain(scan(engine), chain_id, (head_sequence, head_hash), published, progress)
