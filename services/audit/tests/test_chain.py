"""The audit chain: appended in order, and tampering is detected."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from audit.bootstrap import bootstrap
from audit.chain import all_entries, append, verify
from audit.config import EVERY_V1_TOPIC, Settings
from audit.tables import AuditEntry
from rx_contracts import examples, wrap
from rx_messaging.records import Record
from sqlmodel import Session, select


def event(n: int):
    return wrap(examples.referral_submitted(f"r-{n}"), source="/services/referrals")


@pytest.fixture
def engine(tmp_path: Path):
    engine = bootstrap(Settings(database_url=f"sqlite:///{tmp_path / 'audit.db'}")).engine
    with Session(engine) as s:
        for n in range(5):
            append(s, event(n), Record("referrals.events.v1", 0, n, None, None))
            s.commit()
    return engine


def check(engine):
    with Session(engine) as s:
        return verify(all_entries(s))


def test_an_untouched_chain_verifies(engine) -> None:
    result = check(engine)
    assert (result.ok, result.entries) == (True, 5)
    with Session(engine) as s:
        rows = list(s.exec(select(AuditEntry).order_by(AuditEntry.sequence)))
    assert [r.referral_id for r in rows] == [f"r-{n}" for n in range(5)]
    assert rows[0].actor_org == "B81001"
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))


def tamper(engine, change) -> None:
    with Session(engine) as s:
        rows = {r.sequence: r for r in s.exec(select(AuditEntry))}
        change(s, rows)
        s.commit()


def test_an_edited_payload_is_found_at_its_entry(engine) -> None:
    def edit(s, rows):
        rows[3].payload = {**rows[3].payload, "priority": "stat"}
        s.add(rows[3])

    tamper(engine, edit)
    result = check(engine)
    assert (result.ok, result.first_broken) == (False, 3)
    assert "digest" in result.problem


def test_a_deleted_entry_is_found(engine) -> None:
    tamper(engine, lambda s, rows: s.delete(rows[2]))
    result = check(engine)
    assert (result.ok, result.first_broken) == (False, 3)


def test_an_edited_field_with_a_recomputed_digest_still_breaks_the_hash(engine) -> None:
    def edit(s, rows):
        rows[4].actor_org = "EVIL1"
        s.add(rows[4])

    tamper(engine, edit)
    assert check(engine).first_broken == 4


def test_the_audit_consumer_subscribes_to_every_v1_topic_but_not_dead_letters() -> None:
    import re

    pattern = re.compile(EVERY_V1_TOPIC)
    for topic in [
        "referrals.events.v1",
        "routing.decisions.v1",
        "provider.rapid-response.v1",
        "audit.checkpoints.v1",
        "provider.community-nursing.v2",
    ]:
        assert pattern.match(topic), topic
    for topic in ["referrals.events.v1.dlq", "__consumer_offsets", "contract.x-1.v1.tmp"]:
        assert not pattern.match(topic), topic
