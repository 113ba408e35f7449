"""Every kind of tampering with the stored chain is found, at the first entry it broke.

Edits inside the chain break a digest, a hash or a link. Deleting the newest entries, or
rewriting the chain and re-hashing it, leaves a chain that checks out on its own: those are
caught only by the checkpoints published to Kafka, read back by a fresh consumer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from audit.adapters.checkpoint_keys import CheckpointKeys
from audit.adapters.checkpoint_topic import read_checkpoints
from audit.adapters.tables import ENTRY, HEAD
from audit.domain import chain
from audit.domain.verification import Verdict, Verification
from audit.service_layer.handlers import stage_checkpoint
from devstack.topics import ensure_topics
from rx_contracts import ChainCheckpointed, encode, wrap
from rx_messaging.kafka import KafkaPublisher
from rx_messaging.relay import OutboxRelay
from rx_web.settings import Environment
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection, Engine

from .conftest import record_all, submitted, unit_of_work, verify_database


@pytest.fixture
def six(engine: Engine) -> Engine:
    """A chain of six entries, untouched."""
    record_all(engine, [submitted(n) for n in range(1, 7)])
    assert verify(engine).ok
    return engine


def verify(engine: Engine, checkpoints: list[Any] | None = None) -> Verification:
    return verify_database(engine, lambda _chain_id: checkpoints or [])


def rows(conn: Connection) -> dict[int, dict[str, Any]]:
    return {r["sequence"]: dict(r) for r in conn.execute(select(ENTRY)).mappings()}


def edit_payload(conn: Connection, sequence: int, **changes: Any) -> None:
    """Change fields of an entry's stored payload, and nothing else."""
    payload = json.loads(rows(conn)[sequence]["payload"]) | changes
    conn.execute(
        update(ENTRY)
        .where(ENTRY.c.sequence == sequence)
        .values(payload=chain.canonical_json(payload))
    )


def rehash_from(conn: Connection, first: int) -> None:
    """What a careful forger does after editing entry ``first``: recompute the digests and
    hashes of it and every later entry, and the head row, so the chain is consistent again."""
    entries = rows(conn)
    prev = entries[first - 1]["hash"]
    for seq in range(first, max(entries) + 1):
        entry = entries[seq]
        digest = chain.payload_digest(entry["payload"])
        new_hash = chain.entry_hash(
            prev,
            seq,
            entry["event_id"],
            entry["topic"],
            entry["partition"],
            entry["offset"],
            entry["type"],
            entry["referral_id"],
            entry["actor_org"],
            entry["occurred_at_us"],
            entry["recorded_at_us"],
            digest,
        )
        conn.execute(
            update(ENTRY)
            .where(ENTRY.c.sequence == seq)
            .values(payload_digest=digest, prev_hash=prev, hash=new_hash)
        )
        prev = new_hash
    conn.execute(update(HEAD).values(sequence=max(entries), hash=prev))


def test_an_untouched_chain_verifies(six: Engine) -> None:
    result = verify(six)
    assert (result.ok, result.entries, result.first_broken) == (True, 6, None)


def test_an_edited_payload_is_found_at_its_entry(six: Engine) -> None:
    with six.begin() as conn:
        edit_payload(conn, 3, priority="stat")

    result = verify(six)

    assert (result.ok, result.first_broken) == (False, 3)
    assert "payload does not match its digest" in (result.problem or "")


def test_an_edited_metadata_field_is_found_at_its_entry(six: Engine) -> None:
    with six.begin() as conn:
        conn.execute(update(ENTRY).where(ENTRY.c.sequence == 4).values(actor_org="EVIL1"))

    result = verify(six)

    assert (result.ok, result.first_broken) == (False, 4)
    assert "hash does not match its fields" in (result.problem or "")


def test_a_deleted_middle_entry_is_found_where_it_is_missing(six: Engine) -> None:
    with six.begin() as conn:
        conn.execute(delete(ENTRY).where(ENTRY.c.sequence == 3))

    result = verify(six)

    assert (result.ok, result.first_broken) == (False, 3)
    assert "entry 3 is missing" in (result.problem or "")


def test_reordered_entries_are_found_at_the_first_one_moved(six: Engine) -> None:
    with six.begin() as conn:
        entries = rows(conn)
        for seq, other in ((2, 3), (3, 2)):  # entries 2 and 3 trade places
            moved = {k: v for k, v in entries[other].items() if k != "sequence"}
            conn.execute(
                update(ENTRY)
                .where(ENTRY.c.sequence == seq)
                .values(**{**moved, "event_id": f"swap-{seq}"})
            )
        for seq in (2, 3):
            conn.execute(
                update(ENTRY)
                .where(ENTRY.c.sequence == seq)
                .values(event_id=entries[5 - seq]["event_id"])
            )

    result = verify(six)

    assert (result.ok, result.first_broken) == (False, 2)
    assert "does not link to entry 1" in (result.problem or "")


def test_an_inserted_entry_is_found_where_the_chain_no_longer_links(six: Engine) -> None:
    with six.begin() as conn:
        entries = rows(conn)
        for seq in range(6, 2, -1):  # make room at 3, newest first (the key is unique)
            conn.execute(update(ENTRY).where(ENTRY.c.sequence == seq).values(sequence=seq + 1))
        forged = {**entries[3], "event_id": "forged", "referral_id": "r-forged"}
        forged["hash"] = chain.entry_hash(
            entries[2]["hash"],
            3,
            "forged",
            forged["topic"],
            forged["partition"],
            forged["offset"],
            forged["type"],
            "r-forged",
            forged["actor_org"],
            forged["occurred_at_us"],
            forged["recorded_at_us"],
            forged["payload_digest"],
        )
        conn.execute(ENTRY.insert().values(**forged))  # itself well-formed and linked to 2
        conn.execute(update(HEAD).values(sequence=7))

    result = verify(six)

    assert (result.ok, result.first_broken) == (False, 4), result.problem
    assert "does not link to entry 3" in (result.problem or "")


# ---- caught only by the checkpoints on Kafka ---------------------------------------------------


@pytest.fixture
def checkpoint_topic(kafka_bootstrap: str) -> str:
    name = f"audit-test-{uuid.uuid4().hex[:12]}.checkpoints.v1"
    ensure_topics(kafka_bootstrap, {name: 1})
    return name


@pytest.fixture
def publisher(kafka_bootstrap: str) -> Iterator[KafkaPublisher]:
    publisher = KafkaPublisher(kafka_bootstrap, client_id="audit-tamper-test")
    yield publisher
    publisher.close()


@pytest.fixture
def relay(checkpoint_keys: CheckpointKeys, checkpoint_topic: str, publisher: KafkaPublisher) -> Any:
    """What the relay process does on its timer: stage the head, signed, and publish it."""

    def checkpoint_now(engine: Engine) -> None:
        staged = stage_checkpoint(checkpoint_topic, unit_of_work(engine), checkpoint_keys.sign)
        assert staged is not None
        assert OutboxRelay(engine, publisher).relay_once() == 1

    return checkpoint_now


@pytest.fixture
def published(kafka_bootstrap: str, checkpoint_topic: str, checkpoint_keys: CheckpointKeys) -> Any:
    """A chain's checkpoints as verification reads them back: signatures checked against the
    service's published keys."""
    return lambda chain_id: read_checkpoints(
        kafka_bootstrap, checkpoint_topic, chain_id, checkpoint_keys.trusted()
    )


@pytest.mark.kafka
def test_a_truncated_tail_is_caught_only_by_the_checkpoints(
    six: Engine, relay: Any, published: Any
) -> None:
    relay(six)
    with six.begin() as conn:  # delete the newest two entries and make the head agree
        conn.execute(delete(ENTRY).where(ENTRY.c.sequence > 4))
        conn.execute(update(HEAD).values(sequence=4, hash=rows(conn)[4]["hash"]))

    assert verify(six).ok, "what is left is a consistent chain on its own"
    result = verify_database(six, published)

    assert (result.ok, result.first_broken, result.entries) == (False, 5, 4)
    assert "entries 5–6 are missing" in (result.problem or "")


@pytest.mark.kafka
def test_a_rewritten_and_rehashed_chain_is_caught_by_the_checkpoints(
    engine: Engine, relay: Any, published: Any
) -> None:
    record_all(engine, [submitted(1), submitted(2)])
    relay(engine)  # vouches for entries 1–2
    record_all(engine, [submitted(n) for n in range(3, 7)])
    relay(engine)  # vouches for entries 1–6
    with engine.begin() as conn:
        edit_payload(conn, 3, priority="routine")
        rehash_from(conn, 3)

    assert verify(engine).ok, "a re-hashed chain is consistent on its own"
    result = verify_database(engine, published)

    assert (result.ok, result.first_broken, result.checkpoints) == (False, 3, 2)
    assert "entries 3–6 differ from what the checkpoint" in (result.problem or "")


@pytest.mark.kafka
def test_checkpoints_that_match_are_counted_and_the_chain_verifies(
    six: Engine, relay: Any, published: Any
) -> None:
    relay(six)

    result = verify_database(six, published)

    assert (result.ok, result.entries, result.checkpoints) == (True, 6, 1)


# ---- forged checkpoints: published with Kafka access alone, without the signing key -----------


def forge(
    publisher: KafkaPublisher, topic: str, engine: Engine, sign: Any = None, **claims: Any
) -> None:
    """Publish a checkpoint of the database's current head (or of ``claims``) as someone with
    the audit service's Kafka credentials can, signed with ``sign`` if given."""
    with unit_of_work(engine) as uow:
        head = uow.chain.stored_head()
    assert head is not None
    fields = {"chain_id": head.chain_id, "sequence": head.sequence, "hash": head.hash}
    payload = ChainCheckpointed(**(fields | claims), checkpointed_at=datetime.now(UTC))
    if sign is not None:
        payload = payload.model_copy(update={"signature": sign(payload)})
    publisher.publish(topic, [encode(wrap(payload, source="/services/audit"))])


@pytest.mark.kafka
def test_a_forged_checkpoint_and_a_tampered_chain_are_told_apart(
    six: Engine,
    relay: Any,
    published: Any,
    publisher: KafkaPublisher,
    checkpoint_topic: str,
    tmp_path: Path,
) -> None:
    relay(six)  # the genuine checkpoint: entries 1–6, signed with the service's key
    own_key = CheckpointKeys(tmp_path / "forger.json", Environment.DEVELOPMENT)
    forge(publisher, checkpoint_topic, six, sequence=8, hash="f" * 64)  # unsigned
    forge(publisher, checkpoint_topic, six, own_key.signer(), sequence=7, hash="e" * 64)

    forgery = verify_database(six, published)

    assert (forgery.verdict, forgery.first_broken, forgery.checkpoints) == (
        Verdict.FORGED_CHECKPOINT,
        None,
        1,
    )
    [forger_kid] = own_key.trusted()
    assert sorted((f.sequence, f.kid, f.problem) for f in forgery.forged) == [
        (7, forger_kid, f"it is signed with a key that is not published (kid {forger_kid!r})"),
        (8, None, "it has no signature"),
    ]

    # Now the log is rewritten too, and its new head published with the forger's key.
    with six.begin() as conn:
        edit_payload(conn, 3, priority="routine")
        rehash_from(conn, 3)
    forge(publisher, checkpoint_topic, six, own_key.signer())

    tampered = verify_database(six, published)

    # The one genuine checkpoint vouched for entries 1–6 together.
    assert (tampered.verdict, tampered.first_broken, len(tampered.forged)) == (
        Verdict.TAMPERED,
        1,
        3,
    )
    assert "entries 1–6 differ from what the checkpoint published" in (tampered.problem or "")
