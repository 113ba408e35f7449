"""Routing a backlog: how fast the routing consumer works through ReferralSubmitted events,
against a plain kafka-python consumer reading the same topic in the same run.

One topic (3 partitions) gets --count ReferralSubmitted events (urgent community response,
spread over every demo postcode district, a cohort flag on some), produced once. Then each
round times, in alternating order:

  baseline   kafka.KafkaConsumer in a fresh group reads every record (nothing else);
  routing    the routing consumer pipeline as `python -m routing consumer` runs it
             (KafkaRecordSource → InboxConsumer → routing's handler) in a fresh group, into a
             fresh, migrated, seeded SQLite database: every referral routed, its decision,
             clocks and outbox rows stored, inbox row per event. The outbox is not relayed.

Daily capacities are lifted for the run (100,000 referrals in one day would otherwise fill
every organisation and make most of them unroutable, which is not the work being measured).
Target: routing >= 50% of the baseline's events/s. Medians over --rounds; per-round numbers,
a chart and the JSON go to --out. Each measurement first waits (up to --quiet-patience s) for
other processes to use fewer than --quiet-below cores; the CPU used meanwhile by this process,
the broker and everything else is printed, and each side's events per CPU-second of its own
process (what one free core would do) next to its events/s.

    .venv/bin/python bench/routing_backlog.py [--count 100000] [--rounds 3]
        [--bootstrap HOST:PORT] [--out bench/results] [--quiet-below 0.5] [--quiet-patience 60]
    .venv/bin/python bench/routing_backlog.py --profile [--count 20000]   # py-spy, routing only

Without --bootstrap it starts its own broker (devstack, free ports) and stops it at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import CpuMeter, add_quiet_arguments, wait_for_quiet
from pyspy import print_heaviest

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.50
DISTRICTS = ["BS1", "BS2", "BS5", "BS6", "BS7", "BS10", "BS15", "BS16", "BS3", "BS4", "BS13"]


@contextlib.contextmanager
def broker(bootstrap: str | None, workdir: Path) -> Iterator[tuple[str, list[int]]]:
    """(bootstrap servers, the broker's pid if this run started it)."""
    if bootstrap:
        yield bootstrap, []
        return
    from devstack.broker import Broker, ensure_jars
    from devstack.ports import free_ports

    ensure_jars(progress=lambda message: print(f"  {message}", flush=True))
    port, controller = free_ports(2)
    started = Broker(workdir / "kafka", port=port, controller_port=controller, heap="1g")
    print(f"starting a Kafka broker at {started.bootstrap_servers} …", flush=True)
    started.start(timeout=120)
    try:
        yield started.bootstrap_servers, [pid] if (pid := started.pid) else []
    finally:
        started.stop()


def referral_records(count: int) -> Iterator[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """``count`` ReferralSubmitted events as (key, value, headers): urgent community response
    over every demo postcode district, some stat, a cohort flag on some, submitted over the
    last ``count`` milliseconds (distinct instants, as real submissions). Referral ids are
    made the way the referrals service makes them (``rx_contracts.new_id``; random UUIDs for
    a revision from before it existed, measured with ``--ref``)."""
    from rx_contracts import CohortFlags, Priority, encode, examples, wrap

    try:
        from rx_contracts import new_id
    except ImportError:  # a revision from before version 7 ids

        def new_id() -> str:
            return str(uuid.uuid4())

    now = datetime.now(UTC)
    for i in range(count):
        payload = examples.referral_submitted(
            new_id(),
            postcode_district=DISTRICTS[i % len(DISTRICTS)],
            priority=Priority.URGENT if i % 4 else Priority.STAT,
            cohort=CohortFlags(frailty=i % 5 == 0, end_of_life=i % 50 == 0),
            submitted_at=now - timedelta(milliseconds=count - i),
        )
        yield tuple(encode(wrap(payload, source="/bench")))  # type: ignore[misc]


def produce(bootstrap: str, topic: str, count: int) -> None:
    from rx_messaging.kafka import KafkaPublisher

    publisher = KafkaPublisher(bootstrap, client_id="bench-producer", linger_ms=20)
    batch: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
    try:
        with tqdm(total=count, unit="event", desc="producing", file=sys.stdout) as bar:
            for i, record in enumerate(referral_records(count)):
                batch.append(record)
                if len(batch) == 2000 or i == count - 1:
                    publisher.publish(topic, batch, timeout=60)
                    bar.update(len(batch))
                    batch = []
    finally:
        publisher.close()


class Timer:
    """Times the steady state: from the end of the first non-empty batch (the group join and
    first fetch are not the work being compared) to the last event."""

    def __init__(self) -> None:
        self.first_at: float | None = None
        self.first_cpu = 0.0
        self.first_count = 0
        self.seen = 0

    def batch(self, handled: int) -> None:
        self.seen += handled
        if self.first_at is None and handled:
            self.first_at, self.first_count = time.perf_counter(), self.seen
            self.first_cpu = time.process_time()

    def rate(self, ended_at: float) -> tuple[int, float, float]:
        """(events timed, seconds, CPU seconds this process used meanwhile)."""
        assert self.first_at is not None
        cpu = time.process_time() - self.first_cpu
        return self.seen - self.first_count, ended_at - self.first_at, cpu


def run_baseline(bootstrap: str, topic: str, count: int) -> tuple[int, float, float]:
    """A plain kafka-python consumer reading ``count`` records: (events timed, seconds, CPU
    seconds)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap.split(","),
        group_id=f"bench-plain-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    timer = Timer()
    try:
        with tqdm(total=count, unit="event", desc="  baseline", file=sys.stdout) as bar:
            while timer.seen < count:
                for records in consumer.poll(timeout_ms=500).values():
                    timer.batch(len(records))
                    bar.update(len(records))
            return timer.rate(time.perf_counter())
    finally:
        consumer.close(autocommit=False)


def prepare_database(path: Path) -> Any:
    """A migrated, seeded routing database with daily capacities lifted."""
    from routing.bootstrap import bootstrap
    from routing.config import Settings
    from sqlalchemy import text

    try:
        from routing.entrypoints.seed import seed_demo
    except ImportError:  # a revision from before the seed moved to the entrypoints (--ref)
        from routing.seed import seed_demo  # type: ignore[no-redef]

    container = bootstrap(Settings(database_url=f"sqlite:///{path}"))
    seed_demo(container.engine)
    with container.engine.begin() as conn:  # the tables, so that any revision can be measured
        conn.execute(text("UPDATE organisation SET daily_capacity = NULL"))
        conn.execute(text("UPDATE directory_version SET version = version + 1"))
    return container


def run_routing(
    bootstrap: str, topic: str, count: int, workdir: Path
) -> tuple[tuple[int, float, float], dict[str, int]]:
    """The routing consumer pipeline applying ``count`` events: (events timed, seconds, CPU
    seconds), and the rows it stored."""
    from routing.entrypoints.workers import handle_referral_event
    from rx_messaging.consumer import InboxConsumer
    from rx_messaging.kafka import KafkaPublisher, KafkaRecordSource
    from sqlalchemy import text

    db = workdir / f"routing-{uuid.uuid4().hex[:8]}.db"
    container = prepare_database(db)
    source = KafkaRecordSource(bootstrap, f"bench-routing-{uuid.uuid4().hex[:8]}", topics=[topic])
    dlq = KafkaPublisher(bootstrap, client_id="bench-dlq")
    consumer = InboxConsumer(
        "routing", source, container.engine, partial(handle_referral_event, container), dlq
    )
    timer = Timer()
    try:
        with tqdm(total=count, unit="event", desc="  routing ", file=sys.stdout) as bar:
            while timer.seen < count:
                result = consumer.consume_once(timeout=0.5)
                handled = result.applied + result.duplicates + result.dead_lettered
                timer.batch(handled)
                bar.update(handled)
            measured = timer.rate(time.perf_counter())
        with container.engine.connect() as conn:
            stored = {
                name: conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
                for name in ("routing_decision", "sla_clock", "outbox", "inbox")
            }
        return measured, stored
    finally:
        source.close()
        dlq.close()
        container.engine.dispose()


def profile(bootstrap: str, topic: str, count: int, workdir: Path, out: Path) -> None:
    """Record the routing pipeline with py-spy and print its heaviest functions."""
    script = workdir / "profiled.py"
    here = str(Path(__file__).parent)
    script.write_text(
        f"import sys; sys.path.insert(0, {here!r})\n"
        "from routing_backlog import run_routing\n"
        "from pathlib import Path\n"
        f"print(run_routing({bootstrap!r}, {topic!r}, {count}, Path({str(workdir)!r})))\n"
    )
    raw = out / "routing_backlog.pyspy.txt"
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    subprocess.run(
        [
            spy,
            "record",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--rate",
            "200",
            "--",
            sys.executable,
            str(script),
        ],
        check=True,
    )
    print_heaviest(raw)


def chart(rounds: list[dict[str, Any]], summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    xs = range(1, len(rounds) + 1)
    width = 0.38
    left.bar(
        [x - width / 2 for x in xs],
        [r["baseline_rate"] for r in rounds],
        width,
        label="plain kafka-python consumer",
    )
    left.bar(
        [x + width / 2 for x in xs],
        [r["routing_rate"] for r in rounds],
        width,
        label="routing consumer (routed + stored)",
    )
    left.set_xlabel("round")
    left.set_ylabel("events / s")
    left.set_xticks(list(xs))
    left.set_title(f"{summary['count']:,} ReferralSubmitted events")
    left.legend(fontsize=8)
    right.bar(list(xs), [r["ratio"] for r in rounds], color="tab:green")
    right.axhline(TARGET_RATIO, color="tab:red", linestyle="--", label=f"target {TARGET_RATIO:.0%}")
    right.set_xticks(list(xs))
    right.set_xlabel("round")
    right.set_ylabel("routing / baseline")
    right.set_title(f"median ratio {summary['median_ratio']:.1%}")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--profile", action="store_true", help="py-spy the routing pipeline")
    add_quiet_arguments(parser)
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the broker this run started is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="routing-backlog-"))
    try:
        with broker(args.bootstrap, workdir) as (bootstrap, helpers):
            from devstack.topics import ensure_topics

            topic = f"bench.routing-backlog.{uuid.uuid4().hex[:8]}"
            ensure_topics(bootstrap, {topic: 3, f"{topic}.dlq": 1})
            produce(bootstrap, topic, args.count)
            if args.profile:
                profile(bootstrap, topic, args.count, workdir, args.out)
                return 0
            rounds = []
            for n in range(1, args.rounds + 1):
                print(f"round {n}/{args.rounds}", flush=True)
                order = ["baseline", "routing"] if n % 2 else ["routing", "baseline"]
                got: dict[str, Any] = {}
                cpu: dict[str, dict[str, float]] = {}
                for which in order:
                    wait_for_quiet(args.quiet_below, args.quiet_patience, which)
                    with CpuMeter(helpers) as meter:
                        if which == "baseline":
                            got["baseline"] = run_baseline(bootstrap, topic, args.count)
                        else:
                            got["routing"], got["stored"] = run_routing(
                                bootstrap, topic, args.count, workdir
                            )
                    cpu[which] = meter.cores
                    print(f"  {which}: {meter.describe()}", flush=True)
                (b_events, b_secs, b_cpu), (r_events, r_secs, r_cpu) = (
                    got["baseline"],
                    got["routing"],
                )
                result = {
                    "round": n,
                    "order": order,
                    "baseline_rate": b_events / b_secs,
                    "routing_rate": r_events / r_secs,
                    # Per second of this process's own CPU: what one free core would do.
                    "baseline_per_cpu_second": b_events / b_cpu,
                    "routing_per_cpu_second": r_events / r_cpu,
                    "stored": got["stored"],
                    "cpu_cores": cpu,
                }
                result["ratio"] = result["routing_rate"] / result["baseline_rate"]
                rounds.append(result)
                print(
                    f"  baseline {result['baseline_rate']:,.0f}/s  routing "
                    f"{result['routing_rate']:,.0f}/s  ratio {result['ratio']:.1%}  per CPU-second "
                    f"{result['baseline_per_cpu_second']:,.0f} / {result['routing_per_cpu_second']:,.0f}  "
                    f"stored {result['stored']}",
                    flush=True,
                )
            summary = {
                "count": args.count,
                "rounds": len(rounds),
                "median_baseline_rate": statistics.median(r["baseline_rate"] for r in rounds),
                "median_routing_rate": statistics.median(r["routing_rate"] for r in rounds),
                "median_ratio": statistics.median(r["ratio"] for r in rounds),
                "median_cpu_ratio": statistics.median(
                    r["routing_per_cpu_second"] / r["baseline_per_cpu_second"] for r in rounds
                ),
                "target_ratio": TARGET_RATIO,
                "median_other_cores": statistics.median(
                    c["other"] for r in rounds for c in r["cpu_cores"].values()
                ),
                "python": platform.python_version(),
            }
            verdict = "PASS" if summary["median_ratio"] >= TARGET_RATIO else "MISS"
            print(
                f"\nmedians over {len(rounds)} rounds: baseline "
                f"{summary['median_baseline_rate']:,.0f} events/s, routing "
                f"{summary['median_routing_rate']:,.0f} events/s, ratio "
                f"{summary['median_ratio']:.1%} (target {TARGET_RATIO:.0%}: {verdict}); other "
                f"processes used a median {summary['median_other_cores']:.2f} cores meanwhile; "
                f"per CPU-second of each consumer: ratio {summary['median_cpu_ratio']:.1%}"
            )
            (args.out / "routing_backlog.json").write_text(
                json.dumps({"summary": summary, "rounds": rounds}, indent=2)
            )
            chart(rounds, summary, args.out / "routing_backlog.png")
            print(f"wrote {args.out / 'routing_backlog.json'} and routing_backlog.png")
            return 0 if verdict == "PASS" else 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
