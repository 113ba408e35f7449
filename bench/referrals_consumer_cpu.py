"""The referrals consumer's own CPU per routing decision, in process: InboxConsumer → the
referrals service's routing-event handler (as ``python -m referrals consumer`` runs it) fed
from the in-memory broker instead of Kafka, so what is measured is the referrals service's
work alone (decode, load the referral and its history, record the assignment, the ledger, the
inbox), without the broker and the network.

Each measurement is a fresh subprocess: --count referrals are submitted through the service's
own handler into a fresh, migrated SQLite file (not timed), and routing's decision for each
(``ReferralRouted``, numbered as routing numbers it) goes into an in-memory topic of 3
partitions, keyed by referral. The consumer then applies them poll batch by poll batch
(--batch records: 1 as at low rates, where every event is a batch of its own; 200 for a
backlog). Measured: this process's CPU time (``time.process_time``) from the end of the first
batch (statement compilation excluded) to the last, per decision. Afterwards every referral
must be routed, with its history line and its inbox row.

The code under test is frozen first (``snapshot.py``): the working tree, and with --ref REV that
git revision as well; each round measures every variant once, alternating the order. Medians
over --rounds, per batch size.

    .venv/bin/python bench/referrals_consumer_cpu.py [--count 2000] [--rounds 5] [--ref main]
        [--batches 1,200]
    .venv/bin/python bench/referrals_consumer_cpu.py --profile --batches 1   # py-spy, the tree
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab import alternate, drain, freeze, row_counts, run_child, summarise, write_results
from pyspy import print_heaviest, record_gil
from snapshot import ROOT

TOPIC = "routing.decisions.v1"


def measure(count: int, batch: int, workdir: Path) -> dict[str, Any]:
    """In the subprocess: apply ``count`` routing decisions, report CPU µs per decision."""
    import referrals
    from referrals.bootstrap import bootstrap
    from referrals.config import Settings
    from referrals.domain.caller import Caller, Role
    from referrals.domain.model import Patient
    from referrals.entrypoints.workers import handle_routing_event
    from referrals.service_layer import handlers
    from rx_contracts import CohortFlags, Priority, ServiceType, encode, examples, wrap
    from rx_messaging.consumer import InboxConsumer
    from rx_messaging.fake import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
    from sqlalchemy import text

    database = workdir / f"referrals-{uuid.uuid4().hex[:8]}.db"
    container = bootstrap(Settings(database_url=f"sqlite:///{database}"))
    caller = Caller("B81001", frozenset({Role.PROVIDER}))
    command = handlers.SubmitReferral(
        "B81001",
        Patient("BS5 0AA"),
        ServiceType.URGENT_COMMUNITY_RESPONSE,
        Priority.URGENT,
        CohortFlags(),
    )
    ids = [handlers.submit_referral(command, caller, container.uow()).id for _ in range(count)]

    broker = InMemoryBroker()
    broker.create_topic(TOPIC, 3)
    broker.create_topic(f"{TOPIC}.dlq", 1)
    decisions = [
        # Sequence 2: what submission reserved for routing's decision on the first attempt.
        encode(wrap(examples.referral_routed(rid, sequence=2), source="/services/routing"))
        for rid in ids
    ]
    InMemoryPublisher(broker).publish(TOPIC, decisions)
    source = InMemoryRecordSource(broker, "bench-referrals", topics=[TOPIC], max_records=batch)
    consumer = InboxConsumer(
        "referrals", source, container.engine, handle_routing_event, InMemoryPublisher(broker)
    )
    timed, cpu = drain(consumer, count)
    stored = row_counts(container.engine, ["inbox"])
    with container.engine.connect() as conn:
        routed = conn.execute(
            text("SELECT count(*) FROM referral WHERE status = 'routed' AND version = 2")
        ).scalar_one()
        lines = conn.execute(
            text("SELECT count(*) FROM referral_transition WHERE action = 'route'")
        ).scalar_one()
    container.engine.dispose()
    if not (routed == lines == stored["inbox"] == count):
        raise RuntimeError(f"{routed} routed, {lines} history lines, {stored}; expected {count}")
    return {
        "events": timed,
        "cpu_us_per_event": 1e6 * cpu / timed,
        "code": str(Path(referrals.__file__).parent),
    }


def profile(pythonpath: str, count: int, batch: int, workdir: Path, out: Path) -> None:
    """py-spy (the GIL-holding thread) over one measurement; the heaviest functions while
    the consumer works (set-up left out)."""
    raw = out / f"referrals_consumer_cpu-{batch}.pyspy.txt"
    options = ["--count", str(count), "--batch", str(batch), "--workdir", str(workdir)]
    result = run_child(__file__, pythonpath, options, record_gil(raw))
    print(f"{result['cpu_us_per_event']:.0f} µs CPU per decision (under py-spy)")
    print_heaviest(raw, within="consume_once")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ref", help="also measure this git revision, e.g. main")
    parser.add_argument(
        "--batches", default="1,200", help="records per poll batch, comma-separated"
    )
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help="py-spy the working tree")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.count, args.batch, args.workdir)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    batches = [int(b) for b in args.batches.split(",")]
    summary: dict[str, Any] = {"count": args.count, "batches": {}}
    everything: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="referrals-consumer-cpu-") as tmp:
        variants = freeze(args.ref, Path(tmp))
        if args.profile:
            for batch in batches:
                profile(variants["tree"], args.count, batch, Path(tmp), args.out)
            return 0
        for batch in batches:
            options = ["--count", str(args.count), "--batch", str(batch), "--workdir", tmp]
            rounds = alternate(
                variants,
                args.rounds,
                lambda pythonpath, options=options: run_child(__file__, pythonpath, options),
                "cpu_us_per_event",
                ref=args.ref,
                digits=0,
                label=f" (batch {batch})",
            )
            summary["batches"][batch], line = summarise(
                rounds, args.ref, "median_cpu_us_per_event", digits=0
            )
            everything[str(batch)] = rounds
            print(f"batch {batch}: median CPU µs per decision over {len(rounds)} rounds: {line}")
    write_results(args.out / "referrals_consumer_cpu.json", summary, everything)
    return 0


if __name__ == "__main__":
    sys.exit(main())
