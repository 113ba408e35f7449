"""The audit consumer's own CPU per event, in process: InboxConsumer → the audit inbox handler
(as ``python -m audit consumer`` runs it) fed from the in-memory broker instead of Kafka, so
what is measured is the audit service's work alone (decode, append to the chain, the batch's
writes), without the broker and the network.

Each measurement is a fresh subprocess: --count events (whole journeys, as
``audit_ingest.py`` publishes them) go into an in-memory topic of 3 partitions, then the
consumer appends them, poll batch by poll batch (--batch records, 200 unless told), to a fresh, migrated SQLite
file. Measured: this process's CPU time (``time.process_time``; the machine is shared and its
speed drifts, wall time says less) from the end of the first batch (statement compilation is
excluded) to the last, per event. The chain is verified afterwards.

The code under test is frozen first (``snapshot.py``): the working tree, and with --ref REV that
git revision as well; each round measures every variant once, alternating the order, and
reports each one's CPU µs per event and the working tree's ratio to REV in that round. Medians
over --rounds.

    .venv/bin/python bench/audit_cpu.py [--count 20000] [--rounds 7] [--ref main] [--batch 200]
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


def measure(count: int, workdir: Path, batch: int = 200) -> dict[str, Any]:
    """In the subprocess: append ``count`` events and report CPU µs per event."""
    import audit
    from audit.bootstrap import bootstrap
    from audit.config import Settings
    from audit_common import events
    from rx_contracts import encode
    from rx_messaging.consumer import InboxConsumer
    from rx_messaging.fake import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
    from sqlalchemy import text

    try:
        from audit.entrypoints.workers import record_event
    except ImportError:  # revisions before the service took the layered shape
        from audit.workers import record_event  # type: ignore[no-redef]

    broker = InMemoryBroker()
    broker.create_topic(TOPIC, 3)
    broker.create_topic(f"{TOPIC}.dlq", 1)
    InMemoryPublisher(broker).publish(TOPIC, [encode(e) for _source, e in events(count)])
    database = workdir / f"audit-{uuid.uuid4().hex[:8]}.db"
    engine = bootstrap(Settings(database_url=f"sqlite:///{database}")).engine
    source = InMemoryRecordSource(broker, "bench-audit", topics=[TOPIC], max_records=batch)
    consumer = InboxConsumer("audit", source, engine, record_event, InMemoryPublisher(broker))
    timed, cpu = drain(consumer, count)
    stored = row_counts(engine, ["audit_entry"])["audit_entry"]
    with engine.connect() as conn:
        last = conn.execute(text("SELECT sequence, hash FROM audit_chain_head")).one()
    engine.dispose()
    if stored != count or last[0] != count:
        raise RuntimeError(f"{stored} entries stored (head at {last[0]}), expected {count}")
    return {
        "events": timed,
        "cpu_us_per_event": 1e6 * cpu / timed,
        "code": str(Path(audit.__file__).parent),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ref", help="also measure this git revision, e.g. main")
    parser.add_argument(
        "--batch", type=int, default=200, help="records per poll batch (1: as at low rates)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.count, args.workdir, args.batch)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="audit-cpu-") as tmp:
        options = ["--count", str(args.count), "--batch", str(args.batch), "--workdir", tmp]
        rounds = alternate(
            freeze(args.ref, Path(tmp)),
            args.rounds,
            lambda pythonpath: run_child(__file__, pythonpath, options),
            "cpu_us_per_event",
            ref=args.ref,
        )
    summary, line = summarise(rounds, args.ref, "median_cpu_us_per_event")
    summary["count"] = args.count
    print(f"\nmedian CPU µs per event over {len(rounds)} rounds of {args.count:,} events: {line}")
    write_results(args.out / "audit_cpu.json", summary, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
