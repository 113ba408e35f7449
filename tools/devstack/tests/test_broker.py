"""The dev/test Kafka broker, its topic helper and its CLI, against a real broker."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from devstack.broker import Broker, BrokerError, free_ports, port_in_use
from devstack.pytest_plugin import BrokerFactory
from devstack.topics import TopicError, admin_client, ensure_topics
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.producer.future import RecordMetadata

pytestmark = pytest.mark.kafka


def _produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> RecordMetadata:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        metadata: RecordMetadata = producer.send(topic, key=key, value=value).get(timeout=30)
    finally:
        producer.close(timeout=10)
    return metadata


def _consume(consumer: KafkaConsumer, count: int, timeout: float = 30) -> list[ConsumerRecord]:
    """Poll until ``count`` records arrived (bounded by ``timeout``)."""
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


def _group_consumer(bootstrap: str, topic: str, group: str) -> KafkaConsumer:
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )


def test_record_produced_to_fresh_topic_is_consumed_by_fresh_group(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    sent = _produce(kafka_bootstrap, unique_topic, b"referral-1", b'{"status": "sent"}')
    group = f"group-{uuid.uuid4().hex}"

    consumer = _group_consumer(kafka_bootstrap, unique_topic, group)
    try:
        records = _consume(consumer, count=1)
        assert [(r.key, r.value, r.partition, r.offset) for r in records] == [
            (b"referral-1", b'{"status": "sent"}', sent.partition, sent.offset)
        ]
        consumer.commit()
    finally:
        consumer.close()

    # The group's committed position survives the consumer: the offsets topic works.
    checker = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    try:
        assert checker.committed(TopicPartition(unique_topic, sent.partition)) == sent.offset + 1
    finally:
        checker.close()


def test_ensure_topics_is_idempotent_and_creates_requested_partitions(kafka_bootstrap: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    wanted = {f"orders-{suffix}": 3, f"audit-{suffix}": 1}

    ensure_topics(kafka_bootstrap, wanted)
    ensure_topics(kafka_bootstrap, wanted)  # again: existing topics are fine
    ensure_topics(kafka_bootstrap, {**wanted, f"late-{suffix}": 2})  # existing mixed with new

    expected = {**wanted, f"late-{suffix}": 2}
    with admin_client(kafka_bootstrap) as admin:
        described = admin.describe_topics(list(expected))
    assert {t["name"]: len(t["partitions"]) for t in described} == expected
    assert all(p["leader_id"] >= 0 for t in described for p in t["partitions"])


def test_ensure_topics_without_a_broker_fails_clearly() -> None:
    (port,) = free_ports(1)
    started = time.monotonic()
    with pytest.raises(TopicError, match=f"no Kafka broker answered at 127.0.0.1:{port}"):
        ensure_topics(f"127.0.0.1:{port}", {"never-created": 1}, timeout=2)
    assert time.monotonic() - started < 10


def test_killed_broker_restarts_on_same_data_dir_with_its_records(
    broker_factory: BrokerFactory,
) -> None:
    broker = broker_factory()
    ensure_topics(broker.bootstrap_servers, {"crash-check": 1})
    sent = _produce(broker.bootstrap_servers, "crash-check", b"k", b"survives a crash")

    broker.kill()
    assert not broker.is_running()
    assert not port_in_use(broker.port)

    broker.start()
    assert broker.is_running()
    consumer = _group_consumer(broker.bootstrap_servers, "crash-check", f"g-{uuid.uuid4().hex}")
    try:
        records = _consume(consumer, count=1)
    finally:
        consumer.close()
    assert [(r.offset, r.value) for r in records] == [(sent.offset, b"survives a crash")]


def test_cli_starts_in_background_reports_status_and_stops(tmp_path: Path) -> None:
    port, controller_port = free_ports(2)
    data_dir = tmp_path / "kafka"
    common = [
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--controller-port",
        str(controller_port),
    ]

    def cli(command: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devstack.broker", command, *common, *extra],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    try:
        started = cli("start", "--heap", "512m")
        assert started.returncode == 0, started.stderr
        assert f"ready at 127.0.0.1:{port}" in started.stdout

        # The CLI process has exited; the broker lives on and answers.
        status = cli("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"Kafka running: 127.0.0.1:{port}" in status.stdout

        stopped = cli("stop")
        assert stopped.returncode == 0, stopped.stderr
        assert not Broker(data_dir, port=port).is_running()
        assert not port_in_use(port)

        after = cli("status")
        assert after.returncode == 1
        assert "not running" in after.stdout
    finally:
        Broker(data_dir, port=port).stop()


def test_start_refuses_a_port_that_is_already_taken(tmp_path: Path) -> None:
    (controller_port,) = free_ports(1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        broker = Broker(tmp_path / "kafka", port=port, controller_port=controller_port)
        with pytest.raises(BrokerError, match=rf"127\.0\.0\.1:{port} is already in use"):
            broker.start(timeout=10)
    assert not broker.is_running()
    assert not broker.pid_file.exists()


@pytest.mark.parametrize(
    ("settings", "kafka_says"),
    [
        pytest.param({"heap": "lots"}, "Invalid maximum heap size: -Xmxlots", id="bad-heap"),
        pytest.param(
            {"extra_config": {"num.io.threads": "many"}},
            "Invalid value many for configuration num.io.threads",
            id="bad-config",
        ),
    ],
)
def test_broker_that_cannot_start_raises_with_log_tail(
    tmp_path: Path, settings: dict[str, object], kafka_says: str
) -> None:
    port, controller_port = free_ports(2)
    broker = Broker(
        tmp_path / "kafka",
        port=port,
        controller_port=controller_port,
        **settings,  # type: ignore[arg-type]
    )

    started = time.monotonic()
    with pytest.raises(BrokerError) as raised:
        broker.start(timeout=30)

    assert kafka_says in str(raised.value)
    assert time.monotonic() - started < 25  # failed fast, did not wait for the timeout
    assert not broker.is_running()
    assert not port_in_use(port)
