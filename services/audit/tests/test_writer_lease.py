"""Two audit consumers on one PostgreSQL database: one appends, the other stands by outside the
consumer group, and takes over when the active one is killed; the chain never forks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit.adapters.tables import ENTRY
from audit.bootstrap import bootstrap
from audit.config import Settings
from audit.entrypoints.workers import WRITER_ROLE
from devstack.polling import wait_for
from devstack.postgres import create_database, drop_database
from devstack.topics import ensure_topics
from rx_contracts import encode
from rx_messaging.database import make_engine
from rx_messaging.kafka import KafkaPublisher
from rx_messaging.lease import LEASE_LOCKS, Lease
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from .conftest import submitted, verify_database

pytestmark = pytest.mark.kafka


@pytest.fixture
def pg_url(postgres_server: str, tmp_path: Path) -> Iterator[str]:
    name = f"t_audit_lease_{uuid.uuid4().hex[:12]}"
    url = create_database(postgres_server, name)
    settings = Settings(database_url=url, checkpoint_keys_file=tmp_path / "keys.json")
    bootstrap(settings).engine.dispose()  # migrated, keys made
    yield url
    drop_database(postgres_server, name)


def holder(engine: Engine) -> list[str]:
    """application_name of the process(es) holding the writer lease."""
    query = text(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = CAST(:space AS oid)"
        " AND l.objid = CAST(:key AS oid)"
    )
    key = Lease(engine, WRITER_ROLE).key
    with engine.connect() as conn:
        return list(conn.execute(query, {"space": LEASE_LOCKS, "key": key}).scalars())


def entries(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ENTRY)).scalar_one())


def test_two_audit_consumers_one_writer_and_the_standby_takes_over(
    pg_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"auditl{uuid.uuid4().hex[:10]}"
    topic = f"{prefix}.events.v1"
    ensure_topics(kafka_bootstrap, {topic: 3, topic + ".dlq": 1})
    engine = make_engine(pg_url)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    for name in ("audit_a", "audit_b"):
        env = {k: v for k, v in os.environ.items() if k != "RX_METRICS_PORT"}
        env |= {
            "AUDIT_DATABASE_URL": f"{pg_url}?application_name={name}",
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "AUDIT_TOPIC_PATTERN": rf"^{prefix}\.[a-z0-9-]+\.v[0-9]+$",
            "AUDIT_CONSUMER_GROUP": f"{prefix}-audit",
            "AUDIT_CHECKPOINT_KEYS_FILE": str(tmp_path / "keys.json"),
            "AUDIT_HEARTBEAT_DIR": str(tmp_path / name),
        }
        log = (tmp_path / f"{name}.log").open("ab")
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", "audit", "consumer"], env=env, stdout=log, stderr=log
        )
    publisher = KafkaPublisher(kafka_bootstrap, client_id=prefix)
    try:
        wait_for("one consumer to hold the writer lease", lambda: len(holder(engine)) == 1, 300)
        [active] = holder(engine)
        standby = "audit_b" if active == "audit_a" else "audit_a"
        publisher.publish(topic, [encode(submitted(n)) for n in range(40)])
        wait_for("the first events appended", lambda: entries(engine) == 40, 180)
        assert holder(engine) == [active]
        # The standby stands by: it has not touched the chain, and is still running.
        assert processes[standby].poll() is None
        processes[active].send_signal(signal.SIGKILL)
        processes[active].wait(timeout=10)
        wait_for("the standby to take the lease", lambda: holder(engine) == [standby], 120)
        publisher.publish(topic, [encode(submitted(n)) for n in range(40, 80)])
        wait_for("the standby to append the rest", lambda: entries(engine) >= 80, 180)
    finally:
        publisher.close()
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    assert entries(engine) == 80  # every event once (the inbox drops redeliveries)
    verification = verify_database(engine, lambda _: [])
    assert verification.ok, verification.problem
    assert verification.entries == 80
    engine.dispose()
