"""What a poll batch costs the inbox consumer itself, whatever the service: InboxConsumer with a
handler that does nothing, fed from the in-memory broker, on a SQLite file. What is left is the
platform's own work per batch and per event: decoding the envelope, the batch's transaction
(session, BEGIN IMMEDIATE, commit), the inbox lookup and the inbox row.

Each measurement is a fresh subprocess: --count events (referral submissions) go into an
in-memory topic of one partition, and the consumer applies them --batch records per poll batch
(1: as at low rates, where every event is a batch of its own). Measured: this process's CPU
time (``time.process_time``) from the end of the first batch to the last, per event. Every
event must have its inbox row afterwards.

The code under test is frozen first (``snapshot.py``): the working tree, and with --ref REV that
git revision as well; each round measures every variant once, alternating the order. Medians
over --rounds.

    .venv/bin/python bench/consumer_batch_cpu.py [--count 5000] [--rounds 7] [--ref main]
        [--batch 1]
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
from snapshot import ROOT

TOPIC = "referrals.events.v1"


def measure(count: int, batch: int, workdir: Path) -> dict[str, Any]:
    """In the subprocess: consume ``count`` events with a handler that does nothing."""
    import rx_messaging
    from rx_contracts import encode, examples, new_id, wrap
    from rx_messaging.consumer import InboxConsumer
    from rx_messaging.database import make_engine
    from rx_messaging.fake import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
    from rx_messaging.tables import InboxMessage

    engine = make_engine(f"sqlite:///{workdir / f'consumer-{uuid.uuid4().hex[:8]}.db'}")
    InboxMessage.__table__.create(engine)  # type: ignore[attr-defined]
    broker = InMemoryBroker()
    broker.create_topic(TOPIC, 1)
    broker.create_topic(f"{TOPIC}.dlq", 1)
    events = [wrap(examples.referral_submitted(new_id()), source="/bench") for _ in range(count)]
    InMemoryPublisher(broker).publish(TOPIC, [encode(e) for e in events])
    source = InMemoryRecordSource(broker, "bench", topics=[TOPIC], max_records=batch)
    consumer = InboxConsumer(
        "bench", source, engine, lambda _s, _e, _r: None, InMemoryPublisher(broker)
    )
    timed, cpu = drain(consumer, count)
    consumer.close()
    stored = row_counts(engine, ["inbox"])["inbox"]
    engine.dispose()
    if stored != count:
        raise RuntimeError(f"{stored} inbox rows, expected {count}")
    return {
        "events": timed,
        "cpu_us_per_event": 1e6 * cpu / timed,
        "code": str(Path(rx_messaging.__file__).parent),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ref", help="also measure this git revision, e.g. main")
    parser.add_argument("--batch", type=int, default=1, help="records per poll batch")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.count, args.batch, args.workdir)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="consumer-batch-cpu-") as tmp:
        options = ["--count", str(args.count), "--batch", str(args.batch), "--workdir", tmp]
        rounds = alternate(
            freeze(args.ref, Path(tmp)),
            args.rounds,
            lambda pythonpath: run_child(__file__, pythonpath, options),
            "cpu_us_per_event",
            ref=args.ref,
            digits=0,
        )
    summary, line = summarise(rounds, args.ref, "median_cpu_us_per_event", digits=0)
    summary.update(count=args.count, batch=args.batch)
    print(f"\nmedian CPU µs per event, {args.batch} per batch, {len(rounds)} rounds: {line}")
    write_results(args.out / "consumer_batch_cpu.json", summary, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
