"""What a consumer's offset commits cost at one record per poll batch, on a real broker: the
consumer process's CPU and the broker's, per event (issue 21).

One development broker for the whole run. Per measurement a fresh subprocess runs an
``InboxConsumer`` (a fresh topic of one partition, a fresh group, a fresh SQLite file, a handler
with no effects of its own, so the inbox row is the batch's only write) and says when it has its
partition; this process then publishes --count records, one at a time at --rate records/s (so
each is a poll batch of its own, as at low rates in the stack), and the consumer runs until it
has applied them all and one poll found nothing (after 20 untimed warm-up records) (an idle consumer commits then). Reported per
event: the consumer process's CPU over that window (``time.process_time``: every thread,
kafka-python's network thread included) and the broker's (from /proc; the records' produce
requests are in it, the same in every variant).

The code under test is frozen first (``snapshot.py``): the working tree, and with --ref REV that
git revision too; each round measures every variant once, alternating the order. Medians over
--rounds and the tree's ratio to REV.

    .venv/bin/python bench/offset_commits.py [--ref main] [--rounds 3] [--count 200] [--rate 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab import freeze, write_results
from machine import cpu_seconds
from snapshot import ROOT

WARMUP = 20
"""Records each consumer handles before the timed window (statements compiled, fetch settled)."""


def child(bootstrap: str, topic: str, count: int, workdir: Path) -> dict[str, Any]:
    """In the subprocess: consume ``count`` records one batch at a time; CPU per event."""
    import rx_messaging
    from rx_messaging.consumer import InboxConsumer
    from rx_messaging.database import make_engine
    from rx_messaging.kafka import KafkaPublisher, KafkaRecordSource
    from rx_messaging.tables import InboxMessage
    from sqlmodel import SQLModel

    engine = make_engine(f"sqlite:///{workdir / 'consumer.db'}")
    SQLModel.metadata.create_all(engine, tables=[InboxMessage.__table__])  # type: ignore[attr-defined]
    source = KafkaRecordSource(bootstrap, f"bench-{uuid.uuid4().hex[:8]}", topics=[topic])
    dlq = KafkaPublisher(bootstrap, client_id="bench-dlq")
    consumer = InboxConsumer("bench", source, engine, lambda s, e, r: None, dlq)
    while not source._consumer.assignment():
        consumer.consume_once(0.2)
    print("ready", flush=True)
    warm = 0
    while warm < WARMUP:
        warm += consumer.consume_once(1.0).applied
    consumer.consume_once(1.0)  # idle: the warm-up's offsets committed
    print("warm", flush=True)
    started = time.process_time()
    applied = batches = 0
    while True:
        result = consumer.consume_once(1.0)
        if result.applied:
            applied += result.applied
            batches += 1
        elif applied >= count:
            break  # this poll found nothing: an idle consumer has committed
    cpu = time.process_time() - started
    source.close()
    dlq.close()
    return {
        "code": rx_messaging.__file__,
        "applied": applied,
        "batches": batches,
        "consumer_us_per_event": 1e6 * cpu / applied,
    }


def measure(pythonpath: str, bootstrap: str, count: int, rate: float) -> dict[str, Any]:
    """One measurement: the consumer subprocess on ``pythonpath``, records published here."""
    from devstack.topics import ensure_topics
    from rx_contracts import encode, examples, wrap
    from rx_messaging.kafka import KafkaPublisher

    topic = f"bench-offsets-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, {topic: 1})
    with tempfile.TemporaryDirectory(prefix="rx-offsets-") as tmp:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", bootstrap, topic, str(count), tmp],
            env={**os.environ, "PYTHONPATH": pythonpath},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the consumer did not start")
        publisher = KafkaPublisher(bootstrap, client_id="bench-producer")

        def send(n: int) -> None:
            event = wrap(examples.referral_submitted(f"r-{n}"), source="/bench")
            publisher.publish(topic, [encode(event)])

        for n in range(WARMUP):
            send(-1 - n)
        if proc.stdout.readline().strip() != "warm":
            raise RuntimeError("the consumer did not warm up")
        broker0 = cpu_seconds(BROKER_PID)
        start = time.monotonic()
        for n in range(count):
            send(n)
            time.sleep(max(0.0, start + (n + 1) / rate - time.monotonic()))
        out, _ = proc.communicate(timeout=120)
        broker = cpu_seconds(BROKER_PID) - broker0
        publisher.close()
    if proc.returncode != 0:
        raise RuntimeError(f"measurement failed:\n{out[-3000:]}")
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    if not any(result["code"].startswith(path) for path in pythonpath.split(os.pathsep)):
        raise RuntimeError(f"measured {result['code']}, not the frozen copy")
    result["broker_us_per_event"] = 1e6 * broker / count
    return result


BROKER_PID = 0


def main() -> int:
    global BROKER_PID
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, bootstrap, topic, count, workdir = sys.argv
        print(json.dumps(child(bootstrap, topic, int(count), Path(workdir))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help="git revision to compare against (e.g. main)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/offset_commits.json")
    args = parser.parse_args()

    from devstack.broker import Broker, ensure_jars, free_ports

    ensure_jars(progress=print)
    with tempfile.TemporaryDirectory(prefix="rx-offsets-bench-") as tmp:
        variants = freeze(args.ref, Path(tmp))
        port, controller = free_ports(2)
        broker = Broker(Path(tmp) / "broker", port=port, controller_port=controller)
        broker.start(timeout=240)
        BROKER_PID = broker.pid or 0
        rounds: list[dict[str, dict[str, Any]]] = []
        try:
            for n in range(args.rounds):
                order = list(variants) if n % 2 == 0 else list(reversed(variants))
                got = {
                    name: measure(variants[name], broker.bootstrap_servers, args.count, args.rate)
                    for name in order
                }
                rounds.append(got)
                print(
                    f"round {n + 1}/{args.rounds}: "
                    + "  ".join(
                        f"{name}: consumer {r['consumer_us_per_event']:.0f} µs, broker "
                        f"{r['broker_us_per_event']:.0f} µs per event ({r['batches']} batches)"
                        for name, r in got.items()
                    ),
                    flush=True,
                )
        finally:
            broker.stop()
    summary: dict[str, Any] = {}
    for metric in ("consumer_us_per_event", "broker_us_per_event"):
        summary[metric] = {v: statistics.median(r[v][metric] for r in rounds) for v in variants}
        line = ", ".join(f"{v} {m:.0f}" for v, m in summary[metric].items())
        if args.ref:
            ratio = statistics.median(r["tree"][metric] / r[args.ref][metric] for r in rounds)
            summary[metric]["ratio"] = ratio
            line += f"; ratio tree/{args.ref} {ratio:.3f}"
        print(f"median {metric}: {line}")
    write_results(args.out, summary, rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
