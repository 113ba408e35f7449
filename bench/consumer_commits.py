"""What committing a consumer's offsets once per poll batch costs, against holding them back
for the services' commit interval (issue 21).

One broker on free ports; per round and variant (alternating order) three consumer groups
(as referrals, routing and audit) read a steady trickle of --rate small records/s from
``referrals.events.v1`` through ``KafkaRecordSource`` and commit after every batch, with
``commit_interval`` 0 (every commit sent) or the services' ``COMMIT_INTERVAL_S``. Reported: the
broker's CPU and this process's CPU (the three consumers; the producer costs the same in both)
per record, and the offset commits sent per second.

    .venv/bin/python bench/consumer_commits.py [--rounds 2] [--seconds 30] [--rate 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from devstack.broker import Broker, ensure_jars, free_ports
from devstack.topics import ensure_topics
from machine import cpu_seconds
from rx_contracts.topics import REFERRAL_EVENTS, all_topics
from rx_messaging.kafka import KafkaPublisher, KafkaRecordSource
from rx_messaging.records import PublishError
from rx_messaging.runner import COMMIT_INTERVAL_S


def consume(bootstrap: str, interval: float, stop: threading.Event, sends: list[int]) -> None:
    source = KafkaRecordSource(bootstrap, f"bench-{uuid.uuid4().hex[:8]}", topics=[REFERRAL_EVENTS])
    source.commit_interval = interval
    commit = source._consumer.commit
    count = [0]

    def counted(*args: Any, **kwargs: Any) -> None:
        count[0] += 1
        commit(*args, **kwargs)

    source._consumer.commit = counted  # type: ignore[method-assign]
    try:
        while not stop.is_set():
            records = source.poll(1.0)
            if records:
                source.commit({(r.topic, r.partition): r.offset + 1 for r in records})
    finally:
        source.close()
        sends.append(count[0])


def measure(broker: Broker, interval: float, args: argparse.Namespace) -> dict[str, Any]:
    stop, sends = threading.Event(), []
    readers = [
        threading.Thread(target=consume, args=(broker.bootstrap_servers, interval, stop, sends))
        for _ in range(3)
    ]
    for reader in readers:
        reader.start()
    publisher = KafkaPublisher(broker.bootstrap_servers, client_id="bench")
    for _attempt in range(30):  # a fresh broker may still be settling its leaders
        try:
            publisher.publish(REFERRAL_EVENTS, [(b"warm-up", b"x", [])])
            break
        except PublishError:
            time.sleep(1)
    time.sleep(args.settle)  # group joins
    pid = broker.pid or 0
    broker0, own0, t0 = cpu_seconds(pid), time.process_time(), time.monotonic()
    sent = 0
    while time.monotonic() - t0 < args.seconds:
        publisher.publish(REFERRAL_EVENTS, [(str(sent).encode(), b"x" * 600, [])])
        sent += 1
        time.sleep(max(0.0, t0 + sent / args.rate - time.monotonic()))
    time.sleep(2)  # the last records read and their offsets sent
    broker1, own1, t1 = cpu_seconds(pid), time.process_time(), time.monotonic()
    stop.set()
    for reader in readers:
        reader.join()
    publisher.close()
    return {
        "commit_interval": interval,
        "broker_ms_per_record": 1000 * (broker1 - broker0) / sent,
        "clients_ms_per_record": 1000 * (own1 - own0) / sent,
        "commits_per_s": sum(sends) / (t1 - t0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle", type=float, default=10)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=60)
    args = parser.parse_args()
    ensure_jars(progress=print)
    variants = [0.0, COMMIT_INTERVAL_S]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rx-commits-") as tmp:
        port, controller = free_ports(2)
        broker = Broker(Path(tmp), port=port, controller_port=controller)
        broker.start(timeout=240)  # a busy shared machine can take minutes
        try:
            ensure_topics(broker.bootstrap_servers, all_topics())
            for n in range(args.rounds):
                for interval in variants if n % 2 == 0 else reversed(variants):
                    runs.append(measure(broker, interval, args))
                    print(json.dumps(runs[-1]), flush=True)
        finally:
            broker.stop()
    print(
        f"\n{'commit interval':>16} {'broker ms/record':>17} {'3 consumers ms/record':>22} "
        f"{'commits/s':>10}"
    )
    for interval in variants:
        mine = [r for r in runs if r["commit_interval"] == interval]
        print(
            f"{interval:>15g}s "
            f"{statistics.median(r['broker_ms_per_record'] for r in mine):>17.2f} "
            f"{statistics.median(r['clients_ms_per_record'] for r in mine):>22.2f} "
            f"{statistics.median(r['commits_per_s'] for r in mine):>10.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
