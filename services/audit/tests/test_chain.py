"""The chain's pure rules, without a database: what an entry keeps of an event, how it is
hashed and linked, when a checkpoint is due, and how verification judges a walk of entries."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from audit.domain import chain
from audit.domain.chain import Entry, Event, Head
from audit.domain.errors import MalformedEvent
from audit.domain.verification import (
    ENTRY_FIELDS,
    Checkpoint,
    unvouched,
    verify_entries,
)
from rx_contracts import examples, wrap

from .conftest import T0, submitted

RECORDED = chain.to_us(T0 + timedelta(hours=1))
HASHED = (
    "prev_hash",
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
    "payload_digest",
)
"""The fields an entry's hash covers, in the order ``chain.entry_hash`` takes them."""


def event(n: int, topic: str = "referrals.events.v1", raw: bytes | None = None) -> Event:
    return Event.of(submitted(n), topic, 0, n, raw)


def linked(count: int) -> tuple[Head, list[Entry]]:
    """A new chain with ``count`` entries."""
    head = Head.new_chain()
    entries = [head.append(event(n), RECORDED + n) for n in range(1, count + 1)]
    return head, [e for e in entries if e is not None]


def as_tuple(entry: Entry) -> tuple[Any, ...]:
    """An entry as the adapters read it back for verification (ENTRY_FIELDS order)."""
    e = entry.event
    fields = {
        "sequence": entry.sequence,
        "event_id": e.id,
        "topic": e.topic,
        "partition": e.partition,
        "offset": e.offset,
        "type": e.type,
        "referral_id": e.referral_id,
        "actor_org": e.actor_org,
        "occurred_at_us": e.occurred_at_us,
        "recorded_at_us": entry.recorded_at_us,
        "payload": e.payload,
        "payload_digest": e.payload_digest,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }
    return tuple(fields[name] for name in ENTRY_FIELDS)


def rehash(row: list[Any]) -> str:
    """``chain.entry_hash`` of an entry tuple's fields."""
    named = dict(zip(ENTRY_FIELDS, row, strict=True))
    return chain.entry_hash(*(named[name] for name in HASHED))


# ---- what an entry keeps of an event ------------------------------------------------------


def test_an_event_keeps_its_referral_actor_time_and_the_organisations_it_concerns() -> None:
    routed = wrap(
        examples.referral_routed("r-7", assigned_org="RXB02"), source="/s/routing", time=T0
    )

    kept = Event.of(routed, "routing.decisions.v1", 1, 9, None)

    assert (kept.referral_id, kept.actor_org, kept.topic, kept.offset) == (
        "r-7",
        chain.PLATFORM,  # no actor: the platform decided
        "routing.decisions.v1",
        9,
    )
    assert kept.occurred_at_us == chain.to_us(T0)
    assert "RXB02" in kept.organisations
    assert event(1).organisations == ("B81001",)
    assert event(1).actor_org == "B81001"


def test_the_payload_is_kept_as_it_travelled_and_its_digest_is_over_that_text() -> None:
    envelope = submitted(1)
    travelled = b'{"referral_id": "r-1",  "odd spacing": true}'

    def kept(raw: bytes | None) -> Event:
        return Event.of(envelope, "referrals.events.v1", 0, 1, raw)

    assert kept(travelled).payload == travelled.decode()
    assert kept(travelled).payload_digest == hashlib.sha256(travelled).hexdigest()
    assert kept(None).payload == chain.canonical_json(envelope.data)
    assert kept("{}".encode("utf-16")).payload == kept(None).payload, "not UTF-8: canonical"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"id": "bad\x1fid"}, "the event id contains a control character"),
        ({"id": "x" * 65}, "the event id is over 64 characters"),
        ({"type": "rx.bad\nType.v1"}, "the type contains a control character"),
    ],
)
def test_an_event_whose_fields_cannot_be_hashed_unambiguously_is_refused(
    change: dict[str, str], problem: str
) -> None:
    with pytest.raises(MalformedEvent, match=problem):
        Event.of(submitted(1).model_copy(update=change), "referrals.events.v1", 0, 0, None)


def test_a_referral_id_or_actor_with_a_control_character_is_refused() -> None:
    envelope = submitted(1)
    for field, value, problem in [
        ("referral_id", "r\x001", "referral id contains a control character"),
        ("actor", {"organisation": "B8\x7f1001"}, "actor contains a control character"),
    ]:
        bad = envelope.model_copy(update={"data": envelope.data | {field: value}})
        with pytest.raises(MalformedEvent, match=problem):
            Event.of(bad, "referrals.events.v1", 0, 0, None)


# ---- linking --------------------------------------------------------------------------------


def test_the_first_entry_links_to_the_genesis_of_the_chain_id() -> None:
    head = Head.new_chain()
    genesis = head.hash

    first = head.append(event(1), RECORDED)

    assert first is not None and first.sequence == 1
    assert genesis == chain.genesis(head.chain_id)
    assert first.prev_hash == genesis
    assert chain.genesis("another chain") != genesis, "bound to the chain id"


def test_each_entry_links_to_the_one_before_and_the_head_moves_to_it() -> None:
    head, entries = linked(3)

    assert [e.sequence for e in entries] == [1, 2, 3]
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert (head.sequence, head.hash, head.event_sequence) == (3, entries[-1].hash, 3)


def test_an_entry_hash_covers_every_field() -> None:
    _, [entry] = linked(1)
    fields = list(as_tuple(entry))
    assert rehash(fields) == entry.hash
    for name in HASHED:
        changed = fields.copy()
        position = ENTRY_FIELDS.index(name)
        changed[position] = changed[position] + 1 if isinstance(changed[position], int) else "x"
        assert rehash(changed) != entry.hash, name


def test_the_same_event_id_is_appended_once_per_head() -> None:
    head = Head.new_chain()
    assert head.append(event(1), RECORDED) is not None
    assert head.append(event(1, topic="provider.rapid-response.v1"), RECORDED) is None
    assert head.sequence == 1


def test_times_are_microseconds_since_the_epoch_and_naive_ones_are_utc() -> None:
    moment = datetime(2026, 11, 22, 9, 0, 0, 123456, tzinfo=UTC)
    assert chain.from_us(chain.to_us(moment)) == moment
    assert chain.to_us(moment.replace(tzinfo=None)) == chain.to_us(moment)


# ---- checkpoints ----------------------------------------------------------------------------


def test_a_checkpoint_is_due_after_events_but_not_after_checkpoints() -> None:
    head, _ = linked(2)
    assert head.checkpoint_due
    checkpoint = head.checkpoint(T0)
    assert (checkpoint.chain_id, checkpoint.sequence, checkpoint.hash) == (
        head.chain_id,
        2,
        head.hash,
    )

    head.checkpoint_sequence = head.sequence  # staged
    assert not head.checkpoint_due
    ours = wrap(checkpoint, source="/services/audit", time=T0)
    head.append(Event.of(ours, "audit.checkpoints.v1", 0, 0, None), RECORDED)
    assert head.sequence == 3 and not head.checkpoint_due, "a checkpoint makes none due"
    head.append(event(3), RECORDED)
    assert head.checkpoint_due


# ---- verification ---------------------------------------------------------------------------


def published(entry: Entry, offset: int = 0) -> Checkpoint:
    return Checkpoint(entry.sequence, entry.hash, T0, offset)


def test_verification_walks_the_entries_in_chunks_and_counts_them() -> None:
    head, entries = linked(5)
    rows = [as_tuple(e) for e in entries]
    seen: list[int] = []

    result = verify_entries(
        [rows[:2], rows[2:]], head.chain_id, (5, head.hash), [published(entries[3])], seen.append
    )

    assert (result.ok, result.entries, result.checkpoints, result.first_broken) == (
        True,
        5,
        1,
        None,
    )
    assert seen == [2, 3]


def test_the_inlined_hash_in_verification_is_the_chains_own() -> None:
    head, entries = linked(2)
    rows = [list(as_tuple(e)) for e in entries]
    # A field the verifier hashes itself: if its text differed from entry_hash's, this chain
    # would not verify; re-hashed with entry_hash after an edit, it must.
    rows[1][ENTRY_FIELDS.index("actor_org")] = "EDIT1"
    rows[1][-1] = rehash(rows[1])

    result = verify_entries([rows], head.chain_id, (2, rows[1][-1]))

    assert result.ok, result.problem


@pytest.mark.parametrize(
    ("tamper", "first_broken", "problem"),
    [
        (lambda rows: rows.pop(2), 3, "entry 3 is missing"),
        (lambda rows: rows.insert(1, rows.pop(2)), 2, "entry 2 is missing"),
        (
            lambda rows: rows[3].__setitem__(ENTRY_FIELDS.index("payload"), "{}"),
            4,
            "payload does not match its digest",
        ),
        (
            lambda rows: rows[1].__setitem__(ENTRY_FIELDS.index("type"), "rx.forged.v1"),
            2,
            "hash does not match its fields",
        ),
        (
            lambda rows: rows[2].__setitem__(ENTRY_FIELDS.index("prev_hash"), "0" * 64),
            3,
            "does not link to entry 2",
        ),
    ],
)
def test_verification_names_the_first_entry_that_does_not_fit(
    tamper: Any, first_broken: int, problem: str
) -> None:
    head, entries = linked(5)
    rows = [list(as_tuple(e)) for e in entries]
    tamper(rows)

    result = verify_entries([rows], head.chain_id, (5, head.hash))

    assert (result.ok, result.first_broken) == (False, first_broken)
    assert problem in (result.problem or "")


def test_a_consistent_but_shortened_chain_is_betrayed_by_the_head_row_or_a_checkpoint() -> None:
    head, entries = linked(5)
    rows = [as_tuple(e) for e in entries[:3]]

    by_head = verify_entries([rows], head.chain_id, (5, head.hash))
    by_checkpoint = verify_entries(
        [rows], head.chain_id, (3, entries[2].hash), [published(entries[4])]
    )

    assert (by_head.ok, by_head.first_broken) == (False, 4)
    assert "entries 4–5 are missing (head row)" in (by_head.problem or "")
    assert (by_checkpoint.ok, by_checkpoint.first_broken) == (False, 4)
    assert "a checkpoint published at" in (by_checkpoint.problem or "")


def test_a_rehashed_chain_is_betrayed_by_a_checkpoint_of_the_original() -> None:
    original_head, original = linked(4)
    forged = Head(original_head.chain_id, 0, chain.genesis(original_head.chain_id), 0)
    rewritten = [forged.append(event(n, topic="forged.v1"), RECORDED + n) for n in range(1, 5)]
    rows = [as_tuple(e) for e in rewritten if e is not None]

    alone = verify_entries([rows], forged.chain_id, (4, forged.hash))
    vouched = verify_entries(
        [rows], forged.chain_id, (4, forged.hash), [published(original[1]), published(original[3])]
    )

    assert alone.ok, "consistent in itself"
    assert (vouched.ok, vouched.first_broken, vouched.checkpoints) == (False, 1, 1)
    assert "entries 1–2 differ from what the checkpoint" in (vouched.problem or "")


def test_two_checkpoints_that_disagree_break_verification_there() -> None:
    head, entries = linked(2)
    rows = [as_tuple(e) for e in entries]
    conflicting = Checkpoint(2, "f" * 64, T0, 7)

    result = verify_entries(
        [rows], head.chain_id, (2, head.hash), [published(entries[1]), conflicting]
    )

    assert (result.ok, result.first_broken) == (False, 2)
    assert "two published checkpoints disagree" in (result.problem or "")


def test_without_checkpoints_an_intact_chain_is_not_called_intact_and_a_broken_one_stays_so() -> (
    None
):
    head, entries = linked(2)
    rows = [list(as_tuple(e)) for e in entries]
    intact = verify_entries([rows], head.chain_id, (2, head.hash))
    rows[0][ENTRY_FIELDS.index("payload")] = "{}"
    broken = verify_entries([rows], head.chain_id, (2, head.hash))

    assert unvouched(intact, "no broker").ok is False
    assert "cannot be ruled out: no broker" in (unvouched(intact, "no broker").problem or "")
    assert unvouched(broken, "no broker") == broken
