"""The notify worker's ingestion CPU per event, in process: the consumer pipeline
(InboxConsumer → notify's handler, as ``python -m notify worker`` runs it) fed from the
in-memory broker instead of Kafka, so what is measured is notify's work alone.

Each measurement is a fresh subprocess: --journeys referral journeys (submitted, routed,
accepted, started, completed: five events each) go into an in-memory topic of 3 partitions,
then the consumer applies them into a fresh, migrated SQLite file, in one of these shapes:

- ``alone``: one event per poll batch, as at low rates (each event its own transaction), and no
  subscription at all (the common case: nothing to number);
- ``subscribed``: one event per batch, the referrer subscribed to its sent referrals (every
  event numbered once);
- ``paced`` and ``paced-subscribed``: poll batches of 8, as a paced worker reads them at 40
  journeys/s, without and with the subscription;
- ``paced-other``: batches of 8, one subscription, of an organisation none of the referrals
  concerns (subscriptions exist, none hears of these events);
- ``backlog``: poll batches of 200 (a consumer catching up), no subscription.

Measured: this process's CPU time (``time.process_time``: the machine is shared and its speed
drifts) from the end of the first batch (statement compilation excluded) to the last, per
event. The delivery loop does not run here.

The code under test is frozen first (``snapshot.py``): the working tree, and with --ref REV
that git revision as well; shape by shape, each round measures every variant once, alternating
the order, and reports each one's CPU µs per event and the working tree's ratio to REV. Medians
over --rounds.

    .venv/bin/python bench/notify_ingest.py [--journeys 300] [--rounds 5] [--ref main]
    .venv/bin/python bench/notify_ingest.py --profile [--shape alone]   # py-spy, the working tree
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
OTHER = "L81002"
"""An organisation that neither sends nor receives the bench's referrals."""
SHAPES = {
    "alone": (1, None),
    "subscribed": (1, "referrer"),
    "paced": (8, None),
    "paced-subscribed": (8, "referrer"),
    "paced-other": (8, OTHER),
    "backlog": (200, None),
}
"""Shape → (records per poll batch, who subscribes to sent referrals: the referrer, another
organisation, or nobody)."""


def measure(journeys: int, shape: str, workdir: Path) -> dict[str, Any]:
    """In the subprocess: apply the journeys' events and report CPU µs per event."""
    sys.path.insert(0, str(ROOT / "services" / "notify"))
    import notify
    from notify.bootstrap import bootstrap
    from notify.config import Settings
    from notify.domain.caller import Caller
    from notify.domain.subscription import Channel, Content, Filters
    from notify.domain.topics import Topic
    from notify.entrypoints import workers
    from notify.service_layer import handlers
    from rx_contracts import Role, encode
    from rx_messaging.consumer import InboxConsumer
    from rx_messaging.fake import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
    from tests.journeys import GP, Journey

    batch, subscribed = SHAPES[shape]
    broker = InMemoryBroker()
    broker.create_topic(TOPIC, 3)
    broker.create_topic(f"{TOPIC}.dlq", 1)
    records = []
    for _ in range(journeys):
        j = Journey()
        for envelope in (j.submitted(), j.routed(), j.accepted(), j.started(), j.completed()):
            records.append(encode(envelope))
    InMemoryPublisher(broker).publish(TOPIC, records)
    settings = Settings(database_url=f"sqlite:///{workdir / f'notify-{uuid.uuid4().hex[:8]}.db'}")
    container = bootstrap(settings, resolver=lambda host, port: ["93.184.216.34"])
    if subscribed:
        organisation = GP if subscribed == "referrer" else subscribed
        handlers.create_subscription(
            handlers.CreateSubscription(
                channel=Channel.WEBHOOK,
                topic=Topic.SENT,
                endpoint=f"https://{organisation.lower()}.example.org/hook",
                content=Content.FULL_RESOURCE,
                filters=Filters.of(),
            ),
            Caller(organisation, frozenset({Role.PROVIDER})),
            container.uow(),
            container.checks,
        )
    source = InMemoryRecordSource(broker, "bench-notify", topics=[TOPIC], max_records=batch)
    if hasattr(workers, "Ingestion"):
        handler = workers.Ingestion(lambda: None).handle
    else:  # a revision from before it
        handler = workers.handle_event  # type: ignore[attr-defined]
    consumer = InboxConsumer("notify", source, container.engine, handler, InMemoryPublisher(broker))
    count = len(records)
    timed, cpu = drain(consumer, count)
    tables = ["notify_event", "notify_referral", "notify_notification", "inbox"]
    stored = row_counts(container.engine, tables)
    container.engine.dispose()
    if stored["notify_event"] != count or stored["notify_notification"] != (
        count if subscribed == "referrer" else 0
    ):
        raise RuntimeError(f"not every event stored or numbered: {stored}")
    return {
        "events": timed,
        "cpu_us_per_event": 1e6 * cpu / timed,
        "stored": stored,
        "code": str(Path(notify.__file__).parent),
    }


def profile(pythonpath: str, journeys: int, shape: str, workdir: Path, out: Path) -> None:
    """py-spy (the GIL-holding thread) over one measurement; the heaviest functions while
    the consumer works (set-up left out)."""
    raw = out / f"notify_ingest.{shape}.pyspy.txt"
    options = ["--journeys", str(journeys), "--shape", shape, "--workdir", str(workdir)]
    result = run_child(__file__, pythonpath, options, record_gil(raw))
    print(f"{result['cpu_us_per_event']:.0f} µs CPU per event (under py-spy)")
    print_heaviest(raw, within="consume_once")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--journeys", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shapes", default=",".join(SHAPES), help="of " + ", ".join(SHAPES))
    parser.add_argument("--shape", default="alone", help="the shape --profile measures")
    parser.add_argument("--ref", help="also measure this git revision, e.g. main")
    parser.add_argument("--profile", action="store_true", help="py-spy the working tree")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.journeys, args.shape, args.workdir)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    shapes = args.shapes.split(",")
    with tempfile.TemporaryDirectory(prefix="notify-ingest-") as tmp:
        variants = freeze(args.ref, Path(tmp))
        if args.profile:
            profile(variants["tree"], args.journeys, args.shape, Path(tmp), args.out)
            return 0
        rounds: dict[str, list[dict[str, float]]] = {}
        for shape in shapes:
            options = ["--journeys", str(args.journeys), "--shape", shape, "--workdir", tmp]
            rounds[shape] = alternate(
                variants,
                args.rounds,
                partial(run_child, __file__, options=options),
                "cpu_us_per_event",
                ref=args.ref,
                digits=0,
                label=f" {shape}",
            )
    summary: dict[str, Any] = {"journeys": args.journeys, "shapes": {}}
    print(f"\nmedians over {args.rounds} rounds of {args.journeys} journeys (CPU µs per event):")
    for shape, results in rounds.items():
        summary["shapes"][shape], line = summarise(
            results, args.ref, "median_cpu_us_per_event", digits=0
        )
        print(f"  {shape}: {line}")
    write_results(args.out / "notify_ingest.json", summary, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
