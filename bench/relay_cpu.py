"""The outbox relay's own CPU per cycle, in process: at low rates a relay is woken by each
commit and publishes that commit's rows alone, so its cost per journey is its cost per cycle
times the commits (issue 21).

Each measurement is a fresh subprocess on a fresh, migrated SQLite file (the engine as the
services make it: WAL, the process's transaction lock). Per cycle a writer commits one event
(--topics rows, as a referral's event or a routing decision with its provider copy) through
``rx_messaging.outbox`` in a session of its own (not timed), then ``OutboxRelay.relay_once``
reads, publishes to the in-memory broker and marks the rows sent (timed with
``time.process_time``: this process's CPU, not wall time on a shared machine). Kafka's client
and the broker are left out: they are the same in every variant. The first --warmup cycles
(statement compilation) are not timed; every row must be published exactly once.

Paced relays under load carry several commits per cycle: --commits N commits N events before
each cycle (2N rows with --topics 2; 4 commits ≈ the 8 rows a 40 ms pace gathers at 40
journeys/s). --bootstrap HOST:PORT publishes to that Kafka broker instead, through the
services' ``KafkaPublisher`` (idempotent, acks=all); the CPU then includes kafka-python's I/O
thread (``time.process_time`` counts every thread), and the records stay on the broker.

The code under test is frozen first (``snapshot.py``): the working tree, and with --ref REV that
git revision as well; each round measures every variant once, alternating the order, and
reports CPU µs per cycle and the tree's ratio to REV. Medians over --rounds.

    .venv/bin/python bench/relay_cpu.py [--cycles 2000] [--rounds 7] [--ref main]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab import alternate, freeze, run_child, summarise, write_results
from snapshot import ROOT

TOPICS = ("routing.decisions.v1", "provider.rapid-response.v1")


def measure(
    cycles: int, warmup: int, topics: int, workdir: Path, commits: int = 1, bootstrap: str = ""
) -> dict[str, Any]:
    """In the subprocess: ``warmup + cycles`` commit-then-relay cycles; CPU µs per cycle."""
    import rx_messaging
    from rx_contracts import examples, wrap
    from rx_messaging.database import make_engine
    from rx_messaging.fake import InMemoryBroker, InMemoryPublisher
    from rx_messaging.outbox import add_to_outbox
    from rx_messaging.relay import OutboxRelay
    from rx_messaging.tables import OutboxMessage, tables_of
    from sqlalchemy import text
    from sqlmodel import Session, SQLModel

    engine = make_engine(f"sqlite:///{workdir / f'relay-{uuid.uuid4().hex[:8]}.db'}")
    SQLModel.metadata.create_all(engine, tables=tables_of(OutboxMessage))
    broker = InMemoryBroker()
    for topic in TOPICS:
        broker.create_topic(topic, 3)
    publisher: Any = InMemoryPublisher(broker)
    if bootstrap:
        from rx_messaging.kafka import KafkaPublisher

        publisher = KafkaPublisher(bootstrap, client_id="bench-relay")
    relay = OutboxRelay(engine, publisher)
    spent = 0.0
    for n in range(warmup + cycles):
        for c in range(commits):
            event = wrap(examples.referral_submitted(f"r-{n}-{c}"), source="/bench")
            with Session(engine) as session:
                add_to_outbox(session, event, TOPICS[:topics])
                session.commit()
        started = time.process_time()
        sent = relay.relay_once()
        if n >= warmup:
            spent += time.process_time() - started
        if sent != topics * commits:
            raise RuntimeError(f"cycle {n} published {sent} rows, expected {topics * commits}")
    with engine.connect() as conn:
        pending = conn.execute(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")).scalar()
    expected = (warmup + cycles) * topics * commits
    if bootstrap:
        publisher.close()
        published = expected  # every cycle's rows were acknowledged (else relay_once raised)
    else:
        published = sum(len(broker.records(topic)) for topic in TOPICS[:topics])
    engine.dispose()
    if pending or published != expected:
        raise RuntimeError(f"{pending} rows left unsent, {published} published")
    return {
        "cycles": cycles,
        "cpu_us_per_cycle": 1e6 * spent / cycles,
        "code": str(Path(rx_messaging.__file__).parent),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--topics", type=int, choices=(1, 2), default=1, help="rows per commit")
    parser.add_argument("--commits", type=int, default=1, help="commits per cycle")
    parser.add_argument("--bootstrap", default="", help="a Kafka broker (else in memory)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ref", help="also measure this git revision, e.g. main")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        got = measure(
            args.cycles, args.warmup, args.topics, args.workdir, args.commits, args.bootstrap
        )
        print(json.dumps(got))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="relay-cpu-") as tmp:
        options = ["--cycles", str(args.cycles), "--warmup", str(args.warmup)]
        options += ["--topics", str(args.topics), "--workdir", tmp]
        options += ["--commits", str(args.commits), "--bootstrap", args.bootstrap]
        rounds = alternate(
            freeze(args.ref, Path(tmp)),
            args.rounds,
            lambda pythonpath: run_child(__file__, pythonpath, options),
            "cpu_us_per_cycle",
            ref=args.ref,
        )
    summary, line = summarise(rounds, args.ref, "median_cpu_us_per_cycle")
    summary.update(cycles=args.cycles, rows_per_cycle=args.topics * args.commits)
    summary.update(broker="kafka" if args.bootstrap else "in memory")
    print(f"\nmedian CPU µs per cycle over {len(rounds)} rounds of {args.cycles:,} cycles: {line}")
    write_results(args.out / "relay_cpu.json", summary, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
