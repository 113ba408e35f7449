"""Routing's own CPU per ReferralSubmitted event, in process: the routing consumer pipeline
(InboxConsumer → routing's handler, as ``python -m routing consumer`` runs it) fed from the
in-memory broker instead of Kafka, so what is measured is routing's work alone.

Each measurement is a fresh subprocess: --count ReferralSubmitted events (as
``routing_backlog.py`` produces them) go into an in-memory topic of 3 partitions, then the
consumer applies them, poll batch by poll batch (200 records), into a fresh, migrated, seeded
SQLite file (daily capacities lifted). Measured: this process's CPU time (``time.process_time``,
not wall time: the machine is shared and its speed drifts) from the end of the first batch (the
directory load and statement compilation are excluded) to the last, per event.

The code under test is frozen first (``snapshot.py``): the working tree, and with --ref REV
that git revision as well; each round measures every variant once, alternating the order, and
reports each one's CPU µs per event and the working tree's ratio to REV in that round. Medians
over --rounds.

    .venv/bin/python bench/routing_cpu.py [--count 4000] [--rounds 5] [--ref main]
    .venv/bin/python bench/routing_cpu.py --profile [--count 8000]   # py-spy, the working tree
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyspy import print_heaviest
from snapshot import ROOT, snapshot

TOPIC = "referrals.events.v1"


def measure(count: int, workdir: Path) -> dict[str, Any]:
    """In the subprocess: apply ``count`` events and report CPU µs per event."""
    import routing
    from routing.entrypoints.workers import handle_referral_event
    from routing_backlog import prepare_database, referral_records
    from rx_messaging.consumer import InboxConsumer
    from rx_messaging.fake import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
    from sqlalchemy import text

    broker = InMemoryBroker()
    broker.create_topic(TOPIC, 3)
    broker.create_topic(f"{TOPIC}.dlq", 1)
    InMemoryPublisher(broker).publish(TOPIC, list(referral_records(count)))
    container = prepare_database(workdir / f"routing-{uuid.uuid4().hex[:8]}.db")
    source = InMemoryRecordSource(broker, "bench-routing", topics=[TOPIC])
    consumer = InboxConsumer(
        "routing",
        source,
        container.engine,
        partial(handle_referral_event, container),
        InMemoryPublisher(broker),
    )
    first = consumer.consume_once(0)  # directory load, statement compilation: not timed
    handled, started = first.applied, time.process_time()
    while handled < count:
        result = consumer.consume_once(0)
        if not result.applied:
            raise RuntimeError(f"stopped after {handled} of {count} events: {result}")
        handled += result.applied
    cpu = time.process_time() - started
    with container.engine.connect() as conn:
        stored = {
            name: conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
            for name in ("routing_decision", "sla_clock", "outbox", "inbox")
        }
    container.engine.dispose()
    timed = count - first.applied
    return {
        "events": timed,
        "cpu_us_per_event": 1e6 * cpu / timed,
        "stored": stored,
        "code": str(Path(routing.__file__).parent),
    }


def run_variant(
    pythonpath: str, count: int, workdir: Path, spy: Sequence[str] = ()
) -> dict[str, Any]:
    """One measurement in a fresh subprocess with ``pythonpath`` first on the path."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    command = [*spy, sys.executable, __file__, "--child", "--count", str(count)]
    done = subprocess.run(
        [*command, "--workdir", str(workdir)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"measurement failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    # The last JSON line (py-spy prints its own lines after the child's).
    report = [line for line in done.stdout.splitlines() if line.startswith("{")][-1]
    result: dict[str, Any] = json.loads(report)
    if not any(result["code"].startswith(path) for path in pythonpath.split(os.pathsep)):
        raise RuntimeError(f"measured {result['code']}, not the frozen copy")
    return result


def profile(pythonpath: str, count: int, workdir: Path, out: Path) -> None:
    """py-spy (the GIL-holding thread) over one measurement; the heaviest functions while
    the consumer works (set-up left out)."""
    raw = out / "routing_cpu.pyspy.txt"
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    options = ["record", "--gil", "--format", "raw", "--rate", "250", "--output", str(raw), "--"]
    result = run_variant(pythonpath, count, workdir, [spy, *options])
    print(f"{result['cpu_us_per_event']:.0f} µs CPU per event (under py-spy)")
    print_heaviest(raw, within="consume_once")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ref", help="also measure this git revision, e.g. main")
    parser.add_argument("--profile", action="store_true", help="py-spy the working tree")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.count, args.workdir)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="routing-cpu-") as tmp:
        variants: dict[str, str] = {}
        for name, rev in [("tree", None), *([(args.ref, args.ref)] if args.ref else [])]:
            variants[name], digest = snapshot(rev, Path(tmp) / name.replace("/", "_") / "src")
            print(f"{name}: sources frozen (digest {digest})", flush=True)
        if args.profile:
            profile(variants["tree"], args.count, Path(tmp), args.out)
            return 0
        rounds: list[dict[str, float]] = []
        for n in range(args.rounds):
            order = list(variants) if n % 2 == 0 else list(reversed(variants))
            got = {name: run_variant(variants[name], args.count, Path(tmp)) for name in order}
            rounds.append({name: r["cpu_us_per_event"] for name, r in got.items()})
            line = "  ".join(f"{name} {rounds[-1][name]:.0f} µs" for name in variants)
            if args.ref:
                line += f"  ratio tree/{args.ref} {rounds[-1]['tree'] / rounds[-1][args.ref]:.2f}"
            print(
                f"round {n + 1}/{args.rounds}: {line}  stored {got['tree']['stored']}", flush=True
            )
    summary: dict[str, Any] = {
        "count": args.count,
        "median_cpu_us_per_event": {v: statistics.median(r[v] for r in rounds) for v in variants},
    }
    if args.ref:
        summary["median_ratio"] = statistics.median(r["tree"] / r[args.ref] for r in rounds)
    print(
        f"\nmedian CPU µs per event over {len(rounds)} rounds of {args.count:,} events: "
        + ", ".join(f"{v} {us:.0f}" for v, us in summary["median_cpu_us_per_event"].items())
        + (f"; ratio tree/{args.ref} {summary['median_ratio']:.2f}" if args.ref else "")
    )
    (args.out / "routing_cpu.json").write_text(
        json.dumps({"summary": summary, "rounds": rounds}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
