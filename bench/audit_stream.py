"""The audit live stream's cost: the API process's CPU per streamed entry, and entries per
second, while a client catches up on a log of --entries entries (``GET /audit/stream?after=0``:
every page of 200 entries as fast as the server sends them).

A SQLite audit database of --entries entries (whole journeys, as ``audit_ingest.py``
publishes them) is built once. The code under test is frozen first (``snapshot.py``): the
working tree, and with --ref REV (repeatable) those git revisions as well. Each round starts,
for every variant in turn (the order alternating), ``python -m audit api`` on that database,
reads the stream until every entry has arrived, and stops the server. Measured: the server
process's CPU time (from /proc) from the request to the last entry received, per entry; and
the wall-clock rate. Medians over --rounds, with each round's ratio of the working tree to
each revision.

    .venv/bin/python bench/audit_stream.py [--entries 20000] [--rounds 5] [--ref main]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from audit.bootstrap import bootstrap
from audit.config import Settings
from audit.entrypoints.workers import record_event
from devstack.ports import free_ports
from rx_contracts import encode
from rx_messaging.records import Record
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit_common import events
from machine import cpu_seconds, machine_busy_seconds
from snapshot import ROOT, snapshot

OPS = {"X-Organisation": "OPS01", "X-Roles": "ops"}
MARK = b"event: entry\n"
TOPICS = {"referrals": "referrals.events.v1", "routing": "routing.decisions.v1"}


def build(database: Path, count: int, batch: int = 5000) -> None:
    """An audit database of ``count`` entries, appended as the consumer appends them."""
    container = bootstrap(Settings(database_url=f"sqlite:///{database}"))
    mix = events(count)
    for start in range(0, count, batch):
        with Session(container.engine) as session:
            for offset, (source, envelope) in enumerate(mix[start : start + batch], start):
                value = encode(envelope).value
                record_event(session, envelope, Record(TOPICS[source], 0, offset, None, value))
            session.commit()
    container.engine.dispose()


def start_server(pythonpath: str, database: Path) -> tuple[subprocess.Popen[bytes], str]:
    [port] = free_ports(1)
    env = {
        **os.environ,
        "PYTHONPATH": pythonpath,
        "AUDIT_DATABASE_URL": f"sqlite:///{database}",
        "AUDIT_PORT": str(port),
        "RX_ENV": "development",
        "RX_AUTH": "dev-headers",
        "RX_RATE_LIMIT_PER_SECOND": "0",
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen([sys.executable, "-m", "audit", "api"], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the audit API exited with {server.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError("the audit API did not answer /health within 60 s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def catch_up(pythonpath: str, database: Path, count: int) -> dict[str, float]:
    """Start a server on the frozen code, read ``count`` entries off its stream, stop it."""
    server, base = start_server(pythonpath, database)
    try:
        with httpx.Client(timeout=60) as client:
            busy, cpu, started = (
                machine_busy_seconds(),
                cpu_seconds(server.pid),
                time.perf_counter(),
            )
            received, tail = 0, b""
            with client.stream(
                "GET", f"{base}/audit/stream", params={"after": 0}, headers=OPS
            ) as response:
                response.raise_for_status()
                for chunk in response.iter_raw():
                    seen = tail + chunk
                    received += seen.count(MARK)
                    tail = seen[-(len(MARK) - 1) :]  # a mark cut in two is counted once
                    if received >= count:
                        break
            wall = time.perf_counter() - started
            server_cpu = cpu_seconds(server.pid) - cpu
            others = machine_busy_seconds() - busy - server_cpu
    finally:
        stop_server(server)
    if received != count:
        raise RuntimeError(f"received {received} entries, expected {count}")
    return {
        "cpu_us_per_entry": 1e6 * server_cpu / count,
        "entries_per_s": count / wall,
        "other_cores": max(others, 0.0) / wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ref", action="append", default=[], help="also measure this revision")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="audit-stream-") as tmp:
        database = Path(tmp) / "audit.db"
        print(f"building a log of {args.entries:,} entries …", flush=True)
        build(database, args.entries)
        variants: dict[str, str] = {}
        for name, rev in [("tree", None), *((r, r) for r in args.ref)]:
            variants[name], digest = snapshot(rev, Path(tmp) / name.replace("/", "_") / "src")
            print(f"{name}: sources frozen (digest {digest})", flush=True)
        rounds: list[dict[str, dict[str, float]]] = []
        for n in range(args.rounds):
            order = list(variants) if n % 2 == 0 else list(reversed(variants))
            got = {name: catch_up(variants[name], database, args.entries) for name in order}
            rounds.append(got)
            line = "  ".join(
                f"{name} {got[name]['cpu_us_per_entry']:.1f} µs/entry "
                f"({got[name]['entries_per_s']:,.0f}/s, others {got[name]['other_cores']:.2f})"
                for name in variants
            )
            ratios = "  ".join(
                f"tree/{ref} {got['tree']['cpu_us_per_entry'] / got[ref]['cpu_us_per_entry']:.3f}"
                for ref in args.ref
            )
            print(f"round {n + 1}/{args.rounds}: {line}  {ratios}", flush=True)
    summary: dict[str, Any] = {
        "entries": args.entries,
        "median_cpu_us_per_entry": {
            v: statistics.median(r[v]["cpu_us_per_entry"] for r in rounds) for v in variants
        },
        "median_entries_per_s": {
            v: statistics.median(r[v]["entries_per_s"] for r in rounds) for v in variants
        },
        "median_cpu_ratio": {
            ref: statistics.median(
                r["tree"]["cpu_us_per_entry"] / r[ref]["cpu_us_per_entry"] for r in rounds
            )
            for ref in args.ref
        },
    }
    print(
        f"\nmedians over {len(rounds)} rounds of {args.entries:,} entries: "
        + ", ".join(
            f"{v} {summary['median_cpu_us_per_entry'][v]:.1f} µs/entry "
            f"{summary['median_entries_per_s'][v]:,.0f}/s"
            for v in variants
        )
        + "".join(
            f"; CPU ratio tree/{ref} {ratio:.3f}"
            for ref, ratio in summary["median_cpu_ratio"].items()
        )
    )
    (args.out / "audit_stream.json").write_text(
        json.dumps({"summary": summary, "rounds": rounds}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
