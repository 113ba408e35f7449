"""Audit ingest speed: events per second from a real Kafka topic backlog into the hash chain.

Publishes --events events (whole referral journeys: submitted, routed, accepted; ~0.5 KB
each) to a fresh 3-partition topic, then for each of --rounds rounds consumes the whole
backlog with a fresh consumer group into a fresh SQLite database, in turn with:

  decode   poll and decode only, nothing stored: the ceiling Kafka and the envelope
           decoding leave (baseline)
  inbox    ``InboxConsumer`` as the audit consumer runs it (``record_event``): one transaction
           per poll batch, inbox rows looked up and written in bulk

The clock starts when the first batch arrives (joining the group is not ingest) and stops
when every event is recorded; the chain is then verified. Target: >= 5,000 events/s.
Starts its own broker unless --bootstrap (or KAFKA_BOOTSTRAP_SERVERS) names one. Each
measurement first waits (up to --quiet-patience s) for other processes to use fewer than
--quiet-below cores; it prints the CPU used meanwhile by this process, the broker and every
other process, and the events per CPU-second of this process (what one free core would do).

    .venv/bin/python bench/audit_ingest.py [--events 20000] [--rounds 3] [--out bench/results]
        [--quiet-below 0.5] [--quiet-patience 60]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from audit.bootstrap import bootstrap
from audit.config import Settings
from audit.entrypoints.workers import record_event
from audit.service_layer.handlers import verify_chain
from devstack.broker import Broker, ensure_jars, free_ports
from devstack.topics import ensure_topics
from rx_contracts import decode, encode
from rx_messaging.consumer import InboxConsumer
from rx_messaging.kafka import KafkaPublisher, KafkaRecordSource
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit_common import chart, events, save, summarise
from machine import CpuMeter, add_quiet_arguments, wait_for_quiet

TARGET = 5_000


@contextlib.contextmanager
def broker(bootstrap_servers: str | None) -> Iterator[tuple[str, list[int]]]:
    """(bootstrap servers, the broker's pid if this run started it)."""
    if bootstrap_servers:
        yield bootstrap_servers, []
        return
    ensure_jars(progress=lambda message: print(message, flush=True))
    with tempfile.TemporaryDirectory(prefix="audit-ingest-kafka-") as data:
        port, controller = free_ports(2)
        kafka = Broker(Path(data), port=port, controller_port=controller, heap="512m")
        print(f"starting a Kafka broker at {kafka.bootstrap_servers} …", flush=True)
        kafka.start(timeout=120)
        try:
            yield kafka.bootstrap_servers, [pid] if (pid := kafka.pid) else []
        finally:
            kafka.stop()


def fill(bootstrap_servers: str, topic: str, count: int) -> None:
    publisher = KafkaPublisher(bootstrap_servers, client_id="audit-ingest-bench", linger_ms=20)
    try:
        mix = [encode(envelope) for _source, envelope in events(count)]
        for start in range(0, count, 2000):
            publisher.publish(topic, mix[start : start + 2000], timeout=60)
            print(f"\rpublished {min(start + 2000, count):,}/{count:,}", end="", flush=True)
        print(flush=True)
    finally:
        publisher.close()


class Clock:
    """Starts at the first batch; prints progress every two seconds."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, total
        self.started: float | None = None
        self.started_cpu = 0.0
        self.done = 0
        self._shown = 0.0

    def add(self, count: int) -> None:
        if count and self.started is None:
            self.started = time.perf_counter()
            self.started_cpu = time.process_time()
        self.done += count
        now = time.perf_counter()
        if now - self._shown > 2:
            print(f"  {self.label}: {self.done:,}/{self.total:,}", flush=True)
            self._shown = now

    def rate(self) -> tuple[float, float]:
        """(events/s, events per CPU-second of this process: what one free core would do)."""
        assert self.started is not None
        wall = time.perf_counter() - self.started
        return self.done / wall, self.done / (time.process_time() - self.started_cpu)


def source(bootstrap_servers: str, topic: str) -> KafkaRecordSource:
    return KafkaRecordSource(
        bootstrap_servers, f"bench-{uuid.uuid4().hex[:8]}", topics=[topic], client_id="bench"
    )


def run_decode(
    bootstrap_servers: str, topic: str, total: int, _engine: Engine
) -> tuple[float, float]:
    records = source(bootstrap_servers, topic)
    clock = Clock("decode", total)
    try:
        while clock.done < total:
            batch = records.poll(0.5)
            for record in batch:
                decode(record.key, record.value, record.headers)
            clock.add(len(batch))
    finally:
        records.close()
    return clock.rate()


def run_inbox(
    bootstrap_servers: str, topic: str, total: int, engine: Engine
) -> tuple[float, float]:
    records = source(bootstrap_servers, topic)
    dlq = KafkaPublisher(bootstrap_servers, client_id="bench-dlq")
    consumer = InboxConsumer("audit", records, engine, record_event, dlq)
    clock = Clock("inbox", total)
    try:
        while clock.done < total:
            result = consumer.consume_once(0.5)
            clock.add(result.applied + result.duplicates + result.dead_lettered)
    finally:
        records.close()
        dlq.close()
    return clock.rate()


VARIANTS: dict[str, Callable[[str, str, int, Engine], tuple[float, float]]] = {
    "decode (baseline)": run_decode,
    "inbox": run_inbox,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    add_quiet_arguments(parser)
    args = parser.parse_args()

    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    per_cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    other_cores: list[float] = []
    with broker(args.bootstrap) as (servers, helpers):
        topic = f"bench-audit-{uuid.uuid4().hex[:8]}.events.v1"
        ensure_topics(servers, {topic: 3, topic + ".dlq": 1})
        fill(servers, topic, args.events)
        for n in range(1, args.rounds + 1):
            names = list(VARIANTS)
            for name in names if n % 2 else names[::-1]:
                with tempfile.TemporaryDirectory(prefix="audit-ingest-db-") as scratch:
                    container = bootstrap(Settings(database_url=f"sqlite:///{scratch}/a.db"))
                    engine = container.engine
                    wait_for_quiet(args.quiet_below, args.quiet_patience, name)
                    with CpuMeter(helpers) as meter:
                        rate, rate_per_cpu = VARIANTS[name](servers, topic, args.events, engine)
                    if name != "decode (baseline)":
                        result = verify_chain(lambda _chain_id: [], container.uow())
                        if not (result.ok and result.entries == args.events):
                            raise SystemExit(f"{name}: the chain is wrong after ingest: {result}")
                    engine.dispose()
                samples[name].append(rate)
                per_cpu[name].append(rate_per_cpu)
                other_cores.append(meter.cores["other"])
                print(
                    f"round {n}  {name:<18} {rate:>9,.0f} events/s  ({rate_per_cpu:,.0f} per "
                    f"CPU-second)   {meter.describe()}",
                    flush=True,
                )

    summary = summarise(samples)
    print(f"\nother processes on the machine: median {statistics.median(other_cores):.2f} cores")
    for name, figures in summarise(per_cpu).items():
        print(f"{name:<18} per CPU-second of this process: median {figures['median']:,.0f}")
    for name, figures in summary.items():
        verdict = (
            ""
            if name.startswith("decode")
            else ("  PASS" if figures["median"] >= TARGET else "  MISS")
        )
        print(
            f"{name:<18} median {figures['median']:>9,.0f} events/s "
            f"({figures['min']:,.0f}–{figures['max']:,.0f}){verdict}"
        )
    chart(
        args.out / "audit_ingest.png",
        samples,
        TARGET,
        f"Audit ingest from a Kafka backlog of {args.events:,} events (SQLite)",
        "events/s",
    )
    save(
        args.out / "audit_ingest.json",
        {
            "events": args.events,
            "samples": samples,
            "summary": summary,
            "other_cores": other_cores,
            "per_cpu_second": per_cpu,
        },
    )
    print(f"chart: {args.out / 'audit_ingest.png'}")
    return 0 if summary["inbox"]["median"] >= TARGET else 2


if __name__ == "__main__":
    raise SystemExit(main())
