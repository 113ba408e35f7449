"""Several relays on one PostgreSQL outbox: each key's events leave in order through one relay,
nothing is lost, and the slots of a relay that dies are taken over."""

from __future__ import annotations

import gc
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from devstack.polling import wait_for
from devstack.postgres import create_database, drop_database
from devstack.topics import ensure_topics, read_from_start
from kafka.consumer.fetcher import ConsumerRecord
from rx_contracts import decode
from rx_messaging.database import make_engine
from rx_messaging.fake import InMemoryBroker, InMemoryPublisher
from rx_messaging.outbox import add_to_outbox
from rx_messaging.relay import OUTBOX, OutboxRelay
from rx_messaging.slots import SLOT_LOCKS, SLOTS, SlotLeases, slot_column, slot_of
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from .conftest import TABLES, make_event, pending_count

TOPIC = "referrals.events.v1"


@pytest.fixture
def pg_url(postgres_server: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database with the outbox tables (relays share only there)."""
    name = f"t_slots_{uuid.uuid4().hex[:12]}"
    url = create_database(postgres_server, name)
    engine = make_engine(url)
    SQLModel.metadata.create_all(engine, tables=TABLES)
    engine.dispose()
    yield url
    drop_database(postgres_server, name)


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


def stage(engine: Engine, referral_id: str, topics: tuple[str, ...] = (TOPIC,)) -> str:
    event = make_event(referral_id)
    with Session(engine) as session:
        add_to_outbox(session, event, topics)
        session.commit()
    return event.id


def settle(leases: list[SlotLeases], rounds: int = 4) -> None:
    for _ in range(rounds):
        for lease in leases:
            lease.refresh(force=True)


def test_relays_share_the_slots_evenly_and_one_owner_per_slot(pg: Engine) -> None:
    leases = [SlotLeases(pg, f"relay-{n}") for n in range(3)]
    try:
        settle(leases[:2])
        assert sorted(len(lease.owned) for lease in leases[:2]) == [8, 8]
        settle(leases)  # a third relay joins: the first two hand slots over
        owned = [lease.owned for lease in leases]
        assert sorted(len(slots) for slots in owned) == [4, 6, 6]
        assert set().union(*owned) == set(range(SLOTS))
        assert sum(len(slots) for slots in owned) == SLOTS  # nobody shares a slot
        leases[0].close()  # a relay stops: the others cover its slots
        settle(leases[1:])
        assert sorted(len(lease.owned) for lease in leases[1:]) == [8, 8]
        assert leases[1].owned | leases[2].owned == set(range(SLOTS))
    finally:
        for lease in leases:
            lease.close()


def test_a_relay_whose_session_dies_loses_its_slots_to_the_others(pg: Engine) -> None:
    first, second = SlotLeases(pg, "first"), SlotLeases(pg, "second")
    try:
        settle([first, second])
        pid = first.connection().execute(text("SELECT pg_backend_pid()")).scalar_one()
        with pg.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        wait_for(
            "the second relay to own every slot",
            lambda: set(second.refresh(force=True)) == set(range(SLOTS)),
            timeout=10,
        )
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises for a dead session
            first.refresh(force=True)
        assert first.owned == frozenset()
        settle([first, second])  # it reconnects and gets its share back
        assert sorted([len(first.owned), len(second.owned)]) == [8, 8]
    finally:
        first.close()
        second.close()


def test_each_relay_publishes_only_its_slots_and_together_everything_in_order(
    pg: Engine,
) -> None:
    broker = InMemoryBroker()
    broker.create_topic(TOPIC, 3)
    relays = [OutboxRelay(pg, InMemoryPublisher(broker), batch_size=7) for _ in range(2)]
    staged: dict[str, list[str]] = defaultdict(list)
    try:
        settle([relay.leases for relay in relays if relay.leases is not None])
        for n in range(120):
            referral = f"r-{n % 15}"
            staged[referral].append(stage(pg, referral))
        while sum(relay.relay_once() for relay in relays):
            pass
    finally:
        for relay in relays:
            relay.close()
    assert pending_count(pg) == 0
    published: dict[str, list[str]] = defaultdict(list)
    for record in broker.records(TOPIC):
        envelope = decode(record.key, record.value, record.headers)
        published[record.key.decode()].append(envelope.id)
    assert published == staged


def test_one_relay_on_postgresql_still_publishes_every_slot(pg: Engine) -> None:
    broker = InMemoryBroker()
    broker.create_topic(TOPIC, 3)
    keys = [f"r-{n}" for n in range(100)]
    assert {slot_of(key.encode()) for key in keys} == set(range(SLOTS))
    for key in keys:
        stage(pg, key)
    with pg.connect() as conn:  # PostgreSQL and Python agree on every key's slot
        rows = conn.execute(select(OUTBOX.c.key, slot_column(OUTBOX.c.key)))
        assert {key: slot for key, slot in rows} == {k.encode(): slot_of(k.encode()) for k in keys}
    relay = OutboxRelay(pg, InMemoryPublisher(broker))
    try:
        assert relay.relay_once() == len(keys)
    finally:
        relay.close()
    assert pending_count(pg) == 0


def test_a_relay_dropped_without_closing_hands_its_slots_back(pg: Engine) -> None:
    relay = OutboxRelay(pg, InMemoryPublisher(InMemoryBroker()))
    relay.relay_once()
    assert relay.leases is not None and len(relay.leases.owned) == SLOTS
    del relay
    gc.collect()
    successor = SlotLeases(pg, "successor")
    try:
        settle([successor], rounds=1)
        assert successor.owned == set(range(SLOTS))
    finally:
        successor.close()


# ---------------------------------------------------------------- relay processes, real broker

_RELAY = textwrap.dedent(
    """
    import logging, sys
    from pathlib import Path
    from rx_messaging.database import make_engine
    from rx_messaging.runner import run_relay
    logging.basicConfig(level=logging.INFO)
    run_relay("test", make_engine(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), fallback_poll=0.5)
    """
)


class RelayProcesses:
    """Relay processes, each named by ``application_name`` so a test can cut its connections."""

    def __init__(self, url: str, bootstrap: str, workdir: Path) -> None:
        self.url, self.bootstrap, self.workdir = url, bootstrap, workdir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        url = f"{self.url}?application_name={name}"
        log = (self.workdir / f"{name}.log").open("ab")
        env = {k: v for k, v in os.environ.items() if k != "RX_METRICS_PORT"}
        self.running[name] = subprocess.Popen(
            [sys.executable, "-c", _RELAY, url, self.bootstrap, str(self.workdir / name)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text()

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def owners(engine: Engine) -> dict[str, int]:
    """application_name → slots it holds."""
    query = text(
        "SELECT a.application_name AS name, count(*) AS slots FROM pg_locks l"
        " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'"
        " AND l.granted AND l.classid = CAST(:space AS oid) GROUP BY a.application_name"
    )
    with engine.connect() as conn:
        return {row.name: row.slots for row in conn.execute(query, {"space": SLOT_LOCKS})}


def shared_evenly(held: dict[str, int], relays: int) -> bool:
    """Every slot held, by ``relays`` relays none of which holds more than its share. Which
    relay ends up short depends on who claimed first: three relays settle at 6, 6, 4 or at
    6, 5, 5, and either stays (nobody is over its share, no slot is free)."""
    counts = list(held.values())
    return (
        len(counts) == relays and sum(counts) == SLOTS and max(counts) <= math.ceil(SLOTS / relays)
    )


def read_topic(bootstrap: str, topic: str, expected: int) -> list[tuple[str, str]]:
    """(key, event id) of every record on ``topic``, in partition order, once ``expected``
    distinct events are there."""

    def events(records: list[ConsumerRecord]) -> list[tuple[str, str]]:
        return [(r.key.decode(), decode(r.key, r.value, list(r.headers)).id) for r in records]

    records = read_from_start(
        bootstrap, [topic], lambda seen: len(set(events(seen))) >= expected, timeout=60
    )
    return events(records)


def first_copies(seen: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Per key, event ids in the order of their first copy (what an inbox consumer applies)."""
    out: dict[str, list[str]] = defaultdict(list)
    done: set[str] = set()
    for key, event in seen:
        if event not in done:
            done.add(event)
            out[key].append(event)
    return out


def test_three_relay_processes_keep_each_referrals_order_through_kills_and_cut_connections(
    pg_url: str, pg: Engine, kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = f"slots-{uuid.uuid4().hex[:12]}"
    ensure_topics(kafka_bootstrap, {topic: 3})
    relays = RelayProcesses(pg_url, kafka_bootstrap, tmp_path)
    staged: dict[str, list[str]] = defaultdict(list)
    stop_writing = threading.Event()
    written = [0]

    def write() -> None:
        n = 0
        while not stop_writing.is_set():
            referral = f"r-{n % 25}"
            staged[referral].append(stage(pg, referral, (topic,)))
            n += 1
            written[0] = n
            time.sleep(0.005)

    try:
        for name in ("relay_a", "relay_b", "relay_c"):
            relays.start(name)
        wait_for("three relays to share the slots", lambda: shared_evenly(owners(pg), 3), 300)
        writer = threading.Thread(target=write)
        writer.start()
        try:
            wait_for("150 events staged", lambda: written[0] > 150, 180)
            relays.running["relay_a"].kill()  # SIGKILL: no chance to hand anything back
            wait_for("two relays to take over", lambda: shared_evenly(owners(pg), 2), 120)
            wait_for("300 events staged", lambda: written[0] > 300, 180)
            with pg.connect() as admin:  # relay_b's connections cut: its session ends
                admin.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = 'relay_b'"
                    )
                )
            wait_for("450 events staged", lambda: written[0] > 450, 180)
        finally:
            stop_writing.set()
            writer.join()
        wait_for("the outbox to drain", lambda: pending_count(pg) == 0, 180)
        assert relays.running["relay_b"].poll() is None  # it reconnected and carried on
        wait_for(
            "relay_b to own slots again", lambda: set(owners(pg)) == {"relay_b", "relay_c"}, 120
        )
    finally:
        relays.stop_all()
    total = sum(map(len, staged.values()))
    seen = read_topic(kafka_bootstrap, topic, total)
    assert first_copies(seen) == staged, "a referral's events reached the topic out of order"
    assert re.search(r"lost its outbox slots", relays.log("relay_b"))
