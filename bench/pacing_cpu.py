"""A relay's and a consumer's CPU per record when records arrive one by one at a steady rate,
on a real Kafka broker: what pacing (``rx_messaging.worker.Pacing``) saves (issue 21).

Each measurement is a fresh subprocess running the worker as a service runs it:

  relay     ``run_relay`` on a fresh SQLite outbox; a writer process commits one referral
            event (two outbox rows, as a routing decision with its provider copy) every
            1/--rate s for --seconds, each commit waking the relay.
  consumer  ``run_consumer`` (a handler that does nothing: the inbox, the batch's
            transaction and Kafka's part are what is left) on a fresh topic; a writer process
            publishes one event at a time every 1/--rate s, as a relay does at low rates.

Measured over the writer's run until every record is through: the worker process's CPU
(``time.process_time``, every thread of it, kafka-python's I/O thread included) and the
broker's (from ``/proc``; the broker serves nothing else meanwhile), per record; and the
records per relay cycle or consumer batch.

The code under test is frozen first (``snapshot.py``): the working tree (paced by --pace ms)
and, with --ref REV, that revision as its services ran it then (no pacing). Each round measures
every variant once per role and rate, alternating the order; medians over --rounds.

    .venv/bin/python bench/pacing_cpu.py [--roles relay,consumer] [--rates 40,160]
        [--seconds 15] [--pace 20] [--rounds 3] [--ref main]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab import freeze, run_child
from snapshot import ROOT

TOPICS = ("routing.decisions.v1", "provider.rapid-response.v1")
CONSUMED = "referrals.events.v1"


def proc_cpu(pid: int | None) -> float:
    """CPU seconds a process has used (0 if unknown)."""
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def writer(role: str, target: str, rate: float, seconds: float) -> None:
    """In the writer process: one record every 1/rate s, on a steady clock."""
    from rx_contracts import encode, examples, wrap

    count = int(rate * seconds)
    start = time.perf_counter()
    if role == "relay":
        from rx_messaging.database import make_engine
        from rx_messaging.outbox import add_to_outbox
        from sqlmodel import Session

        engine = make_engine(target)
        for n in range(count):
            time.sleep(max(0.0, start + n / rate - time.perf_counter()))
            event = wrap(examples.referral_submitted(f"r-{n % 50}"), source="/bench")
            with Session(engine) as session:
                add_to_outbox(session, event, list(TOPICS))
                session.commit()
        return
    from rx_messaging.kafka import KafkaPublisher

    bootstrap, topic = target.split("|")
    publisher = KafkaPublisher(bootstrap, client_id="bench-writer")
    try:
        for n in range(count):
            time.sleep(max(0.0, start + n / rate - time.perf_counter()))
            event = wrap(examples.referral_submitted(f"r-{n % 50}"), source="/bench")
            publisher.publish(topic, [encode(event)])
    finally:
        publisher.close()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """In the worker process: run the worker while the writer runs, until all is through."""
    import rx_messaging
    from prometheus_client import REGISTRY
    from rx_messaging.database import make_engine
    from rx_messaging.runner import run_consumer, run_relay
    from rx_messaging.tables import InboxMessage, OutboxMessage
    from sqlalchemy import text
    from sqlmodel import SQLModel

    workdir = Path(args.workdir)
    database = f"sqlite:///{workdir / f'{args.role}-{uuid.uuid4().hex[:8]}.db'}"
    engine = make_engine(database)
    tables = [InboxMessage.__table__, OutboxMessage.__table__]  # type: ignore[attr-defined]
    SQLModel.metadata.create_all(engine, tables=tables)
    count = int(args.rate * args.seconds)
    runner = run_relay if args.role == "relay" else run_consumer
    paced = "pace" in inspect.signature(runner).parameters
    options: dict[str, Any] = {"pace": args.pace / 1000} if paced else {}
    expected = count * len(TOPICS) if args.role == "relay" else count
    applied = [0]
    topic = f"{CONSUMED}-{uuid.uuid4().hex[:8]}"
    if args.role == "consumer":
        from devstack.topics import ensure_topics

        ensure_topics(args.bootstrap, {topic: 3})
    target = database if args.role == "relay" else f"{args.bootstrap}|{topic}"

    def through() -> int:
        if args.role == "relay":
            with engine.connect() as conn:
                sent = "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL"
                return int(conn.execute(text(sent)).scalar_one())
        return applied[0]

    stop = threading.Event()
    result: dict[str, float] = {}

    def drive() -> None:
        try:
            run_writer()
        finally:  # whatever happened, the worker stops
            stop.set()
            if args.role == "relay":
                os.kill(os.getpid(), signal.SIGTERM)

    def run_writer() -> None:
        time.sleep(3)  # the worker connects and, as a consumer, joins its group
        cpu, broker = time.process_time(), proc_cpu(args.broker_pid)
        timing = ["--rate", str(args.rate), "--seconds", str(args.seconds)]
        done = subprocess.run(
            [sys.executable, __file__, "--writer", args.role, "--target", target, *timing],
            env=os.environ,
        )
        deadline = time.monotonic() + 60
        while through() < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        result.update(
            cpu=time.process_time() - cpu,
            broker=proc_cpu(args.broker_pid) - broker,
            through=through(),
            writer=done.returncode,
        )

    threading.Thread(target=drive, daemon=True).start()
    heartbeats = workdir / "heartbeats"
    if args.role == "relay":
        run_relay("bench", engine, args.bootstrap, heartbeats, **options)
        cycles = REGISTRY.get_sample_value(
            "rx_outbox_batch_records_count", {"relay": "bench-relay"}
        )
    else:

        def handle(_session: Any, _envelope: Any, _record: Any) -> None:
            applied[0] += 1

        group = f"bench-{uuid.uuid4().hex[:8]}"
        run_consumer(
            "bench",
            engine,
            args.bootstrap,
            group,
            handle,
            heartbeats,
            topics=[topic],
            stop=stop,
            serve=False,
            **options,
        )
        cycles = REGISTRY.get_sample_value("rx_consumer_batch_records_count", {"group": group})
    if result.get("through") != expected or result.get("writer") != 0:
        raise RuntimeError(f"{result} of {expected} records")
    return {
        "code": rx_messaging.__file__,
        "paced": paced,
        "records": expected,
        "cycles": cycles or 0,
        "per_cycle": expected / cycles if cycles else 0.0,
        "worker_us": result["cpu"] / expected * 1e6,
        "broker_us": result["broker"] / expected * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roles", default="relay,consumer")
    parser.add_argument("--rates", default="40,160", help="records/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--pace", type=float, default=20, help="the tree's pacing (ms)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ref", help="also measure this git revision (e.g. main)")
    parser.add_argument("--bootstrap", help="a running broker (else one is started)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--writer", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--broker-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        writer(args.writer, args.target, args.rate, args.seconds)
        return 0
    if args.child:
        print(json.dumps(measure(args)), flush=True)
        return 0

    from devstack.broker import Broker, ensure_jars, free_ports

    with tempfile.TemporaryDirectory(prefix="pacing-cpu-") as tmp:
        variants = freeze(args.ref, Path(tmp))
        kafka = None
        bootstrap, pid = args.bootstrap, None
        if not bootstrap:
            ensure_jars(progress=lambda message: print(message, flush=True))
            port, controller = free_ports(2)
            kafka = Broker(Path(tmp) / "kafka", port=port, controller_port=controller, heap="512m")
            kafka.start(timeout=120)
            bootstrap, pid = kafka.bootstrap_servers, kafka.pid
        from devstack.topics import ensure_topics

        ensure_topics(bootstrap, dict.fromkeys(TOPICS, 3))
        rows: list[dict[str, Any]] = []
        try:
            for n in range(args.rounds):
                for role in args.roles.split(","):
                    for rate in [float(r) for r in args.rates.split(",")]:
                        order = list(variants) if n % 2 == 0 else list(reversed(variants))
                        for name in order:
                            options = ["--role", role, "--rate", str(rate)]
                            options += ["--seconds", str(args.seconds), "--pace", str(args.pace)]
                            options += ["--bootstrap", bootstrap, "--workdir", tmp]
                            options += ["--broker-pid", str(pid or 0)]
                            got = run_child(__file__, variants[name], options)
                            rows.append(
                                {"round": n + 1, "role": role, "rate": rate, "variant": name, **got}
                            )
                            print(
                                f"round {n + 1} {role} {rate:g}/s {name}: "
                                f"{got['worker_us']:.0f} µs worker + {got['broker_us']:.0f} µs "
                                f"broker per record, {got['per_cycle']:.2f} records per cycle",
                                flush=True,
                            )
        finally:
            if kafka is not None:
                kafka.stop()
    summary = []
    print("\nmedians:")
    for role in args.roles.split(","):
        for rate in [float(r) for r in args.rates.split(",")]:
            for name in variants:
                mine = [
                    r for r in rows if (r["role"], r["rate"], r["variant"]) == (role, rate, name)
                ]
                line = {
                    "role": role,
                    "rate": rate,
                    "variant": name,
                    **{
                        k: statistics.median(r[k] for r in mine)
                        for k in ("worker_us", "broker_us", "per_cycle")
                    },
                }
                summary.append(line)
                print(
                    f"  {role} {rate:g}/s {name}: worker {line['worker_us']:.0f} µs, broker "
                    f"{line['broker_us']:.0f} µs per record; {line['per_cycle']:.2f} per cycle",
                    flush=True,
                )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"pacing-cpu-{args.pace:g}ms.json"
    path.write_text(json.dumps({"summary": summary, "rounds": rows}, indent=2) + "\n")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
