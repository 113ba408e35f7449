"""The development broker's own CPU with each JVM and broker setting, idle and under a steady
trickle of produce + fetch, so each setting is measured on its own (issue 21).

Per round and variant (alternating order): a fresh broker on free ports with the platform's
topics, --settle s for start-up work, then its CPU (from /proc) over --idle s with three
consumer groups long-polling (as the services' consumers do), then over --busy s while a
producer sends --rate small records/s (acks=all, idempotent) that the three groups read.
Also reported: the broker's CPU from its start until the idle window (start-up, topics, group
joins, the JIT compilers' first work) and in all, since a development broker lives minutes.

    .venv/bin/python bench/broker_idle.py [--rounds 2] [--idle 30] [--busy 30] [--rate 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from devstack.broker import DEV_JVM_FLAGS, KAFKA_JVM_FLAGS, Broker, ensure_jars, free_ports
from devstack.topics import ensure_topics
from kafka import KafkaConsumer, KafkaProducer
from machine import cpu_seconds
from rx_contracts.topics import REFERRAL_EVENTS, all_topics

OLD_IDLE = {"metadata.max.idle.interval.ms": "500"}
# The development broker's flags before it stopped at the quick compiler (C1); DEV_JVM_FLAGS
# are these plus -XX:TieredStopAtLevel=1.
SERIAL_C2: tuple[str, ...] = ("-server", "-XX:+UseSerialGC", "-Djava.awt.headless=true")
VARIANTS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "before (G1, no-op 500 ms)": (KAFKA_JVM_FLAGS, OLD_IDLE),
    "G1, no-op 5 s": (KAFKA_JVM_FLAGS, {}),
    "Serial, no-op 500 ms": (SERIAL_C2, OLD_IDLE),
    "after (Serial, no-op 5 s)": (SERIAL_C2, {}),
    # Names as run in bench/RESULTS.md, "API, relays and broker": the C2 variant is the row
    # above, the C1 one the development broker's flags now.
    "Serial, C2 (before C1 only)": (SERIAL_C2, {}),
    "after + C1 only": (DEV_JVM_FLAGS, {}),
}


def consume(bootstrap: str, group: str, stop: threading.Event) -> None:
    consumer = KafkaConsumer(
        REFERRAL_EVENTS,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        fetch_max_wait_ms=5000,
    )
    while not stop.is_set():
        if consumer.poll(timeout_ms=1000):
            consumer.commit()
    consumer.close()


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    flags, config = VARIANTS[name]
    with tempfile.TemporaryDirectory(prefix="rx-broker-idle-") as tmp:
        port, controller = free_ports(2)
        broker = Broker(
            Path(tmp), port=port, controller_port=controller, extra_config=config, jvm_flags=flags
        )
        broker.start(timeout=240)  # a busy shared machine can take minutes
        try:
            ensure_topics(broker.bootstrap_servers, all_topics())
            stop = threading.Event()
            readers = [
                threading.Thread(target=consume, args=(broker.bootstrap_servers, f"g{i}", stop))
                for i in range(3)
            ]
            for reader in readers:
                reader.start()
            time.sleep(args.settle)
            pid = broker.pid or 0
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            started = cpu0
            time.sleep(args.idle)
            cpu1, t1 = cpu_seconds(pid), time.monotonic()
            producer = KafkaProducer(
                bootstrap_servers=broker.bootstrap_servers, acks="all", enable_idempotence=True
            )
            sent, start = 0, time.monotonic()
            while time.monotonic() - start < args.busy:
                producer.send(REFERRAL_EVENTS, key=str(sent).encode(), value=b"x" * 600)
                producer.flush()
                sent += 1
                time.sleep(max(0.0, start + sent / args.rate - time.monotonic()))
            cpu2 = cpu_seconds(pid)
            producer.close()
            stop.set()
            for reader in readers:
                reader.join()
        finally:
            broker.stop()
    return {
        "variant": name,
        "idle_cores": (cpu1 - cpu0) / (t1 - t0),
        "busy_ms_per_record": 1000 * (cpu2 - cpu1) / max(sent, 1),
        "records": sent,
        "start_cpu_s": started,
        "total_cpu_s": cpu2,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle", type=float, default=20)
    parser.add_argument("--idle", type=float, default=30)
    parser.add_argument("--busy", type=float, default=30)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--only", action="append", help="variant names to run")
    args = parser.parse_args()
    ensure_jars(progress=print)
    names = args.only or list(VARIANTS)
    runs: list[dict[str, Any]] = []
    for n in range(args.rounds):
        for name in names if n % 2 == 0 else reversed(names):
            runs.append(measure(name, args))
            print(json.dumps(runs[-1]), flush=True)
    print(
        f"\n{'variant':<28} {'idle cores':>10} {'CPU ms per record':>18} "
        f"{'CPU s to settle':>16} {'CPU s in all':>13}"
    )
    for name in names:
        mine = [r for r in runs if r["variant"] == name]
        idle = statistics.median(r["idle_cores"] for r in mine)
        busy = statistics.median(r["busy_ms_per_record"] for r in mine)
        start = statistics.median(r["start_cpu_s"] for r in mine)
        total = statistics.median(r["total_cpu_s"] for r in mine)
        print(f"{name:<28} {idle:>10.3f} {busy:>18.2f} {start:>16.1f} {total:>13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
