"""Audit chain verification speed: entries per second, against reading the same rows
without checking them (the baseline: what the database and driver cost on their own).

Builds a SQLite audit database of --entries entries through the audit inbox handler (payloads
as they travel on Kafka), then for each of --rounds rounds times, in alternating order:

  scan     the rows in sequence order, in the same chunks, nothing checked (baseline)
  verify   ``verify_chain``: both SHA-256s per entry, links, sequence, head row

Target: verify >= 100,000 entries/s. Medians over rounds; chart and numbers go to --out.

    .venv/bin/python bench/audit_verify.py [--entries 200000] [--rounds 5] [--out bench/results]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from audit.adapters.scan import scan
from audit.bootstrap import Container, bootstrap
from audit.config import Settings
from audit.entrypoints.workers import record_event
from audit.service_layer.handlers import verify_chain
from rx_contracts import encode
from rx_messaging.records import Record
from sqlalchemy.engine import Engine
from sqlmodel import Session
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit_common import chart, events, save, summarise

TARGET = 100_000
TOPICS = {"referrals": "referrals.events.v1", "routing": "routing.decisions.v1"}


def build(engine: Engine, count: int, batch: int = 5000) -> None:
    mix = events(count)
    with tqdm(total=count, unit=" entries", desc="building the chain", file=sys.stderr) as bar:
        for start in range(0, count, batch):
            with Session(engine) as session:
                for offset, (source, envelope) in enumerate(mix[start : start + batch], start):
                    record = encode(envelope)
                    record_event(
                        session, envelope, Record(TOPICS[source], 0, offset, None, record.value)
                    )
                session.commit()
            bar.update(min(batch, count - start))


def time_scan(container: Container) -> tuple[float, int]:
    started = time.perf_counter()
    rows = sum(len(chunk) for chunk in scan(container.engine))
    return time.perf_counter() - started, rows


def time_verify(container: Container) -> tuple[float, int]:
    started = time.perf_counter()
    result = verify_chain(lambda _chain_id: [], container.uow())
    elapsed = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"the benchmark chain does not verify: {result}")
    return elapsed, result.entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="audit-verify-bench-") as scratch:
        settings = Settings(database_url=f"sqlite:///{scratch}/audit.db")
        container = bootstrap(settings)
        build(container.engine, args.entries)
        samples: dict[str, list[float]] = {"scan (baseline)": [], "verify": []}
        for n in range(1, args.rounds + 1):
            order = [("scan (baseline)", time_scan), ("verify", time_verify)]
            for name, run in order if n % 2 else order[::-1]:
                elapsed, entries = run(container)
                assert entries == args.entries, (name, entries)
                samples[name].append(entries / elapsed)
                print(f"round {n}  {name:<16} {entries / elapsed:>10,.0f} entries/s", flush=True)
        container.engine.dispose()

    summary = summarise(samples)
    verify = summary["verify"]["median"]
    ratio = verify / summary["scan (baseline)"]["median"]
    verdict = "PASS" if verify >= TARGET else "MISS"
    print(
        f"\nverify: median {verify:,.0f} entries/s (rounds {summary['verify']['min']:,.0f}–"
        f"{summary['verify']['max']:,.0f}); scan alone {summary['scan (baseline)']['median']:,.0f}"
        f"; verify/scan {ratio:.2f}; target {TARGET:,} entries/s: {verdict}"
    )
    chart(
        args.out / "audit_verify.png",
        samples,
        TARGET,
        f"Audit chain verification, {args.entries:,} entries (SQLite)",
        "entries/s",
    )
    save(
        args.out / "audit_verify.json",
        {"entries": args.entries, "samples": samples, "summary": summary, "ratio": ratio},
    )
    print(f"chart: {args.out / 'audit_verify.png'}")
    return 0 if verdict == "PASS" else 2


if __name__ == "__main__":
    raise SystemExit(main())
