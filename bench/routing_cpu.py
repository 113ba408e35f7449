"""Routing's own CPU per ReferralSubmitted event, in process: the routing consumer pipeline
(InboxConsumer → routing's handler, as ``python -m routing consumer`` runs it) fed from the
in-memory broker instead of Kafka, so what is measured is routing's work alone.

Each measurement is a fresh subprocess: --count ReferralSubmitted events (as
``routing_backlog.py`` produces them; with --journeys each followed by its referral's
acceptance, start and completion) go into an in-memory topic of 3 partitions, then the
consumer applies them, poll batch by poll batch (--batch records, 200 unless told), into a fresh, migrated, seeded
SQLite file (daily capacities lifted). Measured: this process's CPU time (``time.process_time``,
not wall time: the machine is shared and its speed drifts) from the end of the first batch (the
directory load and statement compilation are excluded) to the last, per event.

The code under test is frozen first (``snapshot.py``): the working tree, and with --ref REV
that git revision as well; each round measures every variant once, alternating the order, and
reports each one's CPU µs per event and the working tree's ratio to REV in that round. Medians
over --rounds.

    .venv/bin/python bench/routing_cpu.py [--count 4000] [--rounds 5] [--ref main] [--batch 1]
        [--journeys | --mixed]
    .venv/bin/python bench/routing_cpu.py --profile [--count 8000]   # py-spy, the working tree
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab import alternate, drain, freeze, row_counts, run_child, summarise, write_results
from pyspy import print_heaviest, record_gil
from snapshot import ROOT

TOPIC = "referrals.events.v1"


def journeys(count: int, mixed: bool = False) -> list[Any]:
    """``count`` events: each referral submitted (as ``referral_records`` makes them), then
    accepted, started and completed by the organisation routing gives it, one referral after
    another (each later event loads the referral's case, stops a clock and is forwarded).
    ``mixed``: as a steady stream of journeys arrives, each referral's steps six waves apart
    (referral i submitted, i-6 accepted, i-12 started, i-18 completed, then i+1 submitted,
    …): a poll batch of up to 8 (the in-memory source reads the topic's 3 partitions one
    after the other) holds referrals at different steps and no referral twice (its next step
    comes after a round trip through the referrals service)."""
    from datetime import UTC, datetime

    from routing_backlog import referral_records
    from rx_contracts import (
        Actor,
        Outcome,
        ProviderType,
        ReferralAccepted,
        ReferralCompleted,
        ReferralStarted,
        ReferralStatus,
        encode,
        wrap,
    )

    steps = (
        (ReferralAccepted, ReferralStatus.ACCEPTED, {}),
        (ReferralStarted, ReferralStatus.IN_PROGRESS, {}),
        (ReferralCompleted, ReferralStatus.COMPLETED, {"outcome": Outcome.REMAINED_AT_HOME}),
    )
    out: list[Any] = []
    for submitted in referral_records((count + 3) // 4):
        out.append(submitted)
        rid = submitted[0].decode()
        for n, (event, status, extra) in enumerate(steps, start=3):
            payload = event(
                referral_id=rid,
                sequence=n,
                version=n,
                actor=Actor(organisation="RXA01"),
                status=status,
                referrer_org="B81001",
                assigned_org="RXA01",
                provider_type=ProviderType.RAPID_RESPONSE,
                service_type="urgent-community-response",
                priority="urgent",
                occurred_at=datetime.now(UTC),
                **extra,
            )
            out.append(tuple(encode(wrap(payload, source="/bench"))))
    if mixed:
        by_journey = [out[i : i + 4] for i in range(0, len(out), 4)]
        waves = len(by_journey) + 18
        out = [
            by_journey[wave - 6 * step][step]
            for wave in range(waves)
            for step in range(4)
            if 0 <= wave - 6 * step < len(by_journey)
        ]
    return out[:count]


def measure(
    count: int, workdir: Path, batch: int = 200, journey: bool = False, mixed: bool = False
) -> dict[str, Any]:
    """In the subprocess: apply ``count`` events and report CPU µs per event."""
    import routing
    from routing.entrypoints.workers import handle_referral_event
    from routing_backlog import prepare_database, referral_records
    from rx_messaging.consumer import InboxConsumer
    from rx_messaging.fake import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource

    broker = InMemoryBroker()
    broker.create_topic(TOPIC, 3)
    broker.create_topic(f"{TOPIC}.dlq", 1)
    records = journeys(count, mixed) if journey or mixed else list(referral_records(count))
    InMemoryPublisher(broker).publish(TOPIC, records)
    container = prepare_database(workdir / f"routing-{uuid.uuid4().hex[:8]}.db")
    source = InMemoryRecordSource(broker, "bench-routing", topics=[TOPIC], max_records=batch)
    consumer = InboxConsumer(
        "routing",
        source,
        container.engine,
        partial(handle_referral_event, container),
        InMemoryPublisher(broker),
    )
    timed, cpu = drain(consumer, count)  # the first batch (directory load) is not timed
    stored = row_counts(container.engine, ["routing_decision", "sla_clock", "outbox", "inbox"])
    container.engine.dispose()
    return {
        "events": timed,
        "cpu_us_per_event": 1e6 * cpu / timed,
        "stored": stored,
        "code": str(Path(routing.__file__).parent),
    }


def profile(
    pythonpath: str, count: int, workdir: Path, out: Path, batch: int, journey: str | None
) -> None:
    """py-spy (the GIL-holding thread) over one measurement; the heaviest functions while
    the consumer works (set-up left out)."""
    raw = out / "routing_cpu.pyspy.txt"
    options = ["--count", str(count), "--workdir", str(workdir), "--batch", str(batch)]
    options += [journey] if journey else []
    result = run_child(__file__, pythonpath, options, record_gil(raw))
    print(f"{result['cpu_us_per_event']:.0f} µs CPU per event (under py-spy)")
    print_heaviest(raw, within="consume_once")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ref", help="also measure this git revision, e.g. main")
    parser.add_argument(
        "--batch", type=int, default=200, help="records per poll batch (1: as at low rates)"
    )
    parser.add_argument(
        "--journeys",
        action="store_true",
        help="whole journeys (submitted, accepted, started, completed), not submissions only",
    )
    parser.add_argument(
        "--mixed",
        action="store_true",
        help="whole journeys, interleaved as a steady stream (each batch mixes referrals at "
        "different steps, as a paced consumer reads them)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the working tree")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.count, args.workdir, args.batch, args.journeys, args.mixed)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="routing-cpu-") as tmp:
        variants = freeze(args.ref, Path(tmp))
        if args.profile:
            shape = "--mixed" if args.mixed else "--journeys" if args.journeys else None
            profile(variants["tree"], args.count, Path(tmp), args.out, args.batch, shape)
            return 0
        options = ["--count", str(args.count), "--workdir", tmp, "--batch", str(args.batch)]
        options += ["--journeys"] if args.journeys else []
        options += ["--mixed"] if args.mixed else []
        rounds = alternate(
            variants,
            args.rounds,
            lambda pythonpath: run_child(__file__, pythonpath, options),
            "cpu_us_per_event",
            ref=args.ref,
            digits=0,
            note=lambda got: f"stored {got['tree']['stored']}",
        )
    summary, line = summarise(rounds, args.ref, "median_cpu_us_per_event", digits=0)
    summary["count"] = args.count
    print(f"\nmedian CPU µs per event over {len(rounds)} rounds of {args.count:,} events: {line}")
    write_results(args.out / "routing_cpu.json", summary, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
