"""What the relay and consumers tell operators about their batches."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY
from rx_messaging.consumer import BatchResult
from rx_messaging.telemetry import count_batch


def sample(name: str, group: str) -> float:
    return REGISTRY.get_sample_value(name, {"group": group}) or 0.0


def test_each_settled_batch_adds_its_size_to_the_groups_histogram() -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    count = count_batch(group)
    count(BatchResult(applied=3, duplicates=1))
    count(BatchResult(dead_lettered=1))
    count(BatchResult(retry=True))  # nothing settled: no batch to count
    assert sample("rx_consumer_batch_records_count", group) == 2
    assert sample("rx_consumer_batch_records_sum", group) == 5
    le_one = REGISTRY.get_sample_value(
        "rx_consumer_batch_records_bucket", {"group": group, "le": "1.0"}
    )
    assert le_one == 1
    applied = {"group": group, "outcome": "applied"}
    assert REGISTRY.get_sample_value("rx_consumer_events_total", applied) == 3
