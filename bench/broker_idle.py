"""The development broker's own CPU with each JVM and broker setting, idle and under traffic
shaped like the stack's, so each setting is measured on its own against the broker as it is
now (issue 21).

Per round and variant (alternating order): a fresh broker on free ports with the platform's
topics, --settle s for start-up work, then its CPU (from /proc) over --idle s with --groups
consumer groups long-polling as the services' consumers do (the platform's own Kafka client,
one of them a pattern subscription to every topic as the audit consumer's, offsets committed
at most every second), then over --busy s while a producer (idempotent, acks=all) sends --rate
records/s one at a time, each acknowledged before the next, as a relay at low rates does.
Each variant's CPU is also split by thread pool (/proc per thread, named by the JVM's thread
dump), so the pools a setting changes show beside the total. The broker's total comes from
its threads' ``schedstat`` (nanoseconds; the live threads only), the pools' from the clock tick.
Client variants (``CLIENTS``) change the consumers instead of the broker; the consumers' own
idle CPU (this process's, whose main thread only sleeps meanwhile) is reported beside. The ratio column is the median
over rounds of each variant's figure against the broker as it is now in the same round.

    .venv/bin/python bench/broker_idle.py [--rounds 3] [--idle 30] [--busy 30] [--rate 60] \
        [--only NAME …] [--pools 8]
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

from audit.config import EVERY_V1_TOPIC
from devstack.broker import DEV_JVM_FLAGS, KAFKA_JVM_FLAGS, Broker, ensure_jars, free_ports
from devstack.jvm_profile import cpu_by_pool, thread_cpu, thread_names
from devstack.topics import ensure_topics
from machine import run_seconds
from rx_contracts.topics import REFERRAL_EVENTS, all_topics
from rx_messaging.kafka import KafkaPublisher, KafkaRecordSource
from rx_messaging.runner import IDLE_POLL_S

NOW = "now"
OLD_IDLE = {"metadata.max.idle.interval.ms": "500"}
# The development broker's flags before it stopped at the quick compiler (C1); DEV_JVM_FLAGS
# are these plus -XX:TieredStopAtLevel=1.
SERIAL_C2: tuple[str, ...] = ("-server", "-XX:+UseSerialGC", "-Djava.awt.headless=true")
VARIANTS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    NOW: (DEV_JVM_FLAGS, {}),
    # Earlier settings, as run in bench/RESULTS.md ("Cost per journey", "API, relays and
    # broker").
    "before (G1, no-op 500 ms)": (KAFKA_JVM_FLAGS, OLD_IDLE),
    "G1, no-op 5 s": (KAFKA_JVM_FLAGS, {}),
    "Serial, no-op 500 ms": (SERIAL_C2, OLD_IDLE),
    "after (Serial, no-op 5 s)": (SERIAL_C2, {}),
    "Serial, C2 (before C1 only)": (SERIAL_C2, {}),
    "after + C1 only": (DEV_JVM_FLAGS, {}),
    # Candidates for the development broker (issue 21, "the broker's share of a journey").
    "heartbeat 1 s": (DEV_JVM_FLAGS, {"broker.heartbeat.interval.ms": "1000"}),
    "no metadata no-op": (DEV_JVM_FLAGS, {"metadata.max.idle.interval.ms": "0"}),
    "1 io + 1 network thread": (
        DEV_JVM_FLAGS,
        {"num.io.threads": "1", "num.network.threads": "1"},
    ),
    "1 coordinator thread each": (
        DEV_JVM_FLAGS,
        {"group.coordinator.threads": "1", "share.coordinator.threads": "1"},
    ),
    "no perf data": ((*DEV_JVM_FLAGS, "-XX:-UsePerfData"), {}),
    # The quick compiler compiles a method after 10 times as many calls and loops: fewer
    # methods compiled after the start, so less compiling while idle.
    "JIT thresholds x10": ((*DEV_JVM_FLAGS, "-XX:CompileThresholdScaling=10"), {}),
    # Every partition's high watermark is written to a checkpoint file this often (5 s).
    "high watermark checkpoint 30 s": (
        DEV_JVM_FLAGS,
        {"replica.high.watermark.checkpoint.interval.ms": "30000"},
    ),
    # The development broker before the candidates above that helped were taken up.
    "before (heartbeat 500 ms, 4 io, 2 network, 4 coordinator threads, perf data)": (
        tuple(flag for flag in DEV_JVM_FLAGS if flag != "-XX:-UsePerfData"),
        {
            "broker.heartbeat.interval.ms": "500",
            "num.io.threads": "4",
            "num.network.threads": "2",
            "group.coordinator.threads": "4",
        },
    ),
}
CLIENTS_AS_MAIN = "clients as f7b0d94 (metadata every 10 s in every consumer)"
POLL_5S = "consumer loop polls 5 s"
POLL_1S = "consumer loop polls 1 s (as before)"
POLL_15S = "consumer loop polls 15 s"
POLL_15S_FETCH_15S = "consumer loop polls 15 s, fetches wait 15 s"


class Clients:
    """How the benchmark's consumers are set up: overrides of ``KafkaRecordSource``'s settings
    (for the fixed-topic groups, and for the pattern group) and the loop's poll timeout."""

    def __init__(
        self,
        topics: dict[str, Any] | None = None,
        pattern: dict[str, Any] | None = None,
        poll: float = IDLE_POLL_S,
    ) -> None:
        self.topics, self.pattern, self.poll = topics or {}, pattern or {}, poll


# The clients' variants run against the development broker as it is now (VARIANTS[NOW]).
CLIENTS: dict[str, Clients] = {
    NOW: Clients(),
    # Before every consumer but the pattern subscription kept kafka-python's 5-minute refresh.
    CLIENTS_AS_MAIN: Clients(topics={"metadata_max_age_ms": 10_000}),
    # The services' consumer loop (rx_messaging.runner) polled with a 1 s timeout before.
    POLL_1S: Clients(poll=1.0),
    POLL_5S: Clients(poll=5.0),
    POLL_15S: Clients(poll=15.0),
    POLL_15S_FETCH_15S: Clients(
        topics={"fetch_max_wait_ms": 15_000}, pattern={"fetch_max_wait_ms": 15_000}, poll=15.0
    ),
}
for _name in CLIENTS:
    VARIANTS.setdefault(_name, VARIANTS[NOW])


def consume(
    bootstrap: str, group: str, stop: threading.Event, pattern: bool, clients: Clients
) -> None:
    """A service's consumer loop: poll, commit at most every second and when idle."""
    source = (
        KafkaRecordSource(bootstrap, group, pattern=EVERY_V1_TOPIC, **clients.pattern)
        if pattern
        else KafkaRecordSource(bootstrap, group, topics=[REFERRAL_EVENTS], **clients.topics)
    )
    positions: dict[tuple[str, int], int] = {}
    committed = time.monotonic()
    while not stop.is_set():
        # As the services' consumer: a long poll is cut short while offsets wait for their commit.
        due = committed + 1.0 - time.monotonic() if positions else clients.poll
        records = source.poll(min(clients.poll, max(due, 0.0)))
        for record in records:
            positions[(record.topic, record.partition)] = record.offset + 1
        if positions and (not records or time.monotonic() - committed >= 1.0):
            source.commit(positions)
            positions, committed = {}, time.monotonic()
    source.close()


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    flags, config = VARIANTS[name]
    clients = CLIENTS.get(name, CLIENTS[NOW])
    with tempfile.TemporaryDirectory(prefix="rx-broker-idle-") as tmp:
        port, controller = free_ports(2)
        broker = Broker(
            Path(tmp), port=port, controller_port=controller, extra_config=config, jvm_flags=flags
        )
        broker.start(timeout=240)  # a busy shared machine can take minutes
        try:
            bootstrap = broker.bootstrap_servers
            ensure_topics(bootstrap, all_topics())
            stop = threading.Event()
            readers = [
                threading.Thread(target=consume, args=(bootstrap, f"g{i}", stop, i == 0, clients))
                for i in range(args.groups)
            ]
            for reader in readers:
                reader.start()
            time.sleep(args.settle)
            pid = broker.pid or 0
            own0 = time.process_time()  # the consumers' threads: this thread only sleeps
            cpu0, threads0, t0 = run_seconds(pid), thread_cpu(pid), time.monotonic()
            time.sleep(args.idle)
            cpu1, threads1, t1 = run_seconds(pid), thread_cpu(pid), time.monotonic()
            own1 = time.process_time()
            publisher = KafkaPublisher(bootstrap, "bench-relay")
            sent, start = 0, time.monotonic()
            while time.monotonic() - start < args.busy:
                publisher.publish(REFERRAL_EVENTS, [(str(sent).encode(), b"x" * 600, [])])
                sent += 1
                time.sleep(max(0.0, start + sent / args.rate - time.monotonic()))
            cpu2, threads2 = run_seconds(pid), thread_cpu(pid)
            names = thread_names(pid)
            publisher.close()
            stop.set()
            for reader in readers:
                reader.join()
        finally:
            broker.stop()
    idle_s = t1 - t0
    return {
        "variant": name,
        "idle_cores": (cpu1 - cpu0) / idle_s,
        "clients_idle_cores": (own1 - own0) / idle_s,
        "busy_ms_per_record": 1000 * (cpu2 - cpu1) / max(sent, 1),
        "records": sent,
        "start_cpu_s": cpu0,
        "total_cpu_s": cpu2,
        "idle_pools": {p: s / idle_s for p, s in cpu_by_pool(threads0, threads1, names).items()},
        "busy_pools": {
            p: 1000 * s / max(sent, 1) for p, s in cpu_by_pool(threads1, threads2, names).items()
        },
    }


def ratio_to_now(runs: list[dict[str, Any]], name: str, key: str) -> float | None:
    """Median over rounds of ``name``'s figure over the broker-as-now's figure in that round."""
    now = {r["round"]: r[key] for r in runs if r["variant"] == NOW}
    ratios = [
        r[key] / now[r["round"]] for r in runs if r["variant"] == name and now.get(r["round"])
    ]
    return statistics.median(ratios) if ratios else None


def pool_medians(mine: list[dict[str, Any]], key: str) -> dict[str, float]:
    pools = {pool for r in mine for pool in r[key]}
    medians = {p: statistics.median(r[key].get(p, 0.0) for r in mine) for p in pools}
    return dict(sorted(medians.items(), key=lambda item: -item[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=20)
    parser.add_argument("--idle", type=float, default=30)
    parser.add_argument("--busy", type=float, default=30)
    parser.add_argument("--rate", type=float, default=60, help="records/s, one per request")
    parser.add_argument("--groups", type=int, default=4, help="consumer groups reading")
    parser.add_argument("--only", action="append", help="variant names to run (now is added)")
    parser.add_argument("--pools", type=int, default=8, help="thread pools listed per variant")
    parser.add_argument("--out", type=Path, help="every run as JSON")
    args = parser.parse_args()
    ensure_jars(progress=print)
    names = [NOW, *[n for n in args.only if n != NOW]] if args.only else list(VARIANTS)
    runs: list[dict[str, Any]] = []
    for n in range(args.rounds):
        for name in names if n % 2 == 0 else reversed(names):
            runs.append(measure(name, args) | {"round": n})
            summary = {k: v for k, v in runs[-1].items() if not k.endswith("pools")}
            print(json.dumps(summary), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"argv": sys.argv, "runs": runs}, indent=1))
    print(
        f"\n{'variant':<28} {'idle cores':>10} {'ratio':>6} {'CPU ms per record':>18} "
        f"{'ratio':>6} {'CPU s to settle':>16} {'CPU s in all':>13} {'clients idle':>12} "
        f"{'ratio':>6}"
    )
    for name in names:
        mine = [r for r in runs if r["variant"] == name]
        idle = statistics.median(r["idle_cores"] for r in mine)
        busy = statistics.median(r["busy_ms_per_record"] for r in mine)
        start = statistics.median(r["start_cpu_s"] for r in mine)
        total = statistics.median(r["total_cpu_s"] for r in mine)
        idle_ratio = ratio_to_now(runs, name, "idle_cores") or float("nan")
        busy_ratio = ratio_to_now(runs, name, "busy_ms_per_record") or float("nan")
        clients = statistics.median(r["clients_idle_cores"] for r in mine)
        clients_ratio = ratio_to_now(runs, name, "clients_idle_cores") or float("nan")
        print(
            f"{name:<28} {idle:>10.4f} {idle_ratio:>6.2f} {busy:>18.3f} {busy_ratio:>6.2f} "
            f"{start:>16.1f} {total:>13.1f} {clients:>12.4f} {clients_ratio:>6.2f}"
        )
    for name in names:
        mine = [r for r in runs if r["variant"] == name]
        print(f"\n{name}: thread pools, median cores idle | CPU ms per record busy")
        idle_pools, busy_pools = pool_medians(mine, "idle_pools"), pool_medians(mine, "busy_pools")
        for pool in list(dict.fromkeys([*idle_pools, *busy_pools]))[: args.pools * 2]:
            if pool in list(idle_pools)[: args.pools] or pool in list(busy_pools)[: args.pools]:
                print(
                    f"  {pool:<64} {idle_pools.get(pool, 0):>8.4f} | {busy_pools.get(pool, 0):>7.3f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
