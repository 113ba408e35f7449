"""The least work routing must do per ReferralSubmitted, done the fastest way CPython offers,
against the plain kafka-python consumer's own cost per record, measured in the same run
(routing issue: "routing >= 50% of a plain consumer's rate").

Routing reads each record like the plain consumer does, and then, at the very least:

  contracts  reads the CloudEvents headers, validates the ReferralSubmitted payload
             (pydantic-core's Rust JSON validation, no json.loads), makes two ids, builds a
             validated ReferralRouted and serialises it (Rust model_dump_json);
  storage    stores what the design requires per event, with no ORM and no SQLAlchemy: raw
             sqlite3 executemany, batches of 500, one commit per batch, into the routing
             schema as migrated (its indexes included), ids made as the services make them
             (UUID version 7, ``rx_contracts.new_id``): the case, the decision, two SLA clocks,
             the event's outbox row for each of its two topics and the inbox row; the day load
             once per batch.

No rules, directory, capacity or opening hours are evaluated, and nothing is read back
(routing also checks the case and reads the day load): a lower bound. With routing's CPU per
event at least the baseline's plus the floor, its rate can be at most
baseline / (baseline + floor) of the plain consumer's; this prints that bound beside the
target. CPU time (time.process_time), medians over --rounds; the machine's speed drifts, but
all three are measured in the same run, alternating.

    .venv/bin/python bench/routing_floor.py [--count 20000] [--rounds 3] [--bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rx_contracts import new_id

sys.path.insert(0, str(Path(__file__).resolve().parent))
from routing_backlog import TARGET_RATIO, broker, produce, run_baseline

BATCH = 500
TOPICS = ("routing.decisions.v1", "provider.rapid-response.v1")


def records(count: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """``count`` ReferralSubmitted records as they travel on Kafka."""
    from rx_contracts import encode, examples, new_id, wrap

    return [
        tuple(encode(wrap(examples.referral_submitted(new_id()), source="/bench")))  # type: ignore[misc]
        for _ in range(count)
    ]


def contracts_floor(recs: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> float:
    """CPU µs per event: the incoming event read and validated, the outgoing one built and
    serialised, in their fastest forms."""
    from rx_contracts import ReferralRouted, ReferralSubmitted

    start = time.process_time()
    for _key, value, headers in recs:
        attributes = {name: raw.decode() for name, raw in headers}
        submitted = ReferralSubmitted.model_validate_json(value)
        routed = ReferralRouted(
            referral_id=submitted.referral_id,
            decision_id=str(uuid.uuid4()),
            attempt=1,
            assigned_org="RXA01",
            provider_type="rapid-response",
            service_type=submitted.service_type,
            priority=submitted.priority,
            locality="east-bristol",
            rule_id="ucr-east",
            rule_version=1,
            routed_at=datetime.now(UTC),
        )
        routed.model_dump_json().encode()
        str(uuid.uuid4()), attributes["ce_id"]
    return (time.process_time() - start) / len(recs) * 1e6


def fresh_schema(path: Path) -> None:
    from routing.adapters.migrate import upgrade
    from rx_messaging.database import make_engine

    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()


def event_rows(i: int, now: str, value: bytes, headers: str) -> tuple[Any, ...]:
    rid, did, eid, cid = (new_id() for _ in range(4))
    case = (
        rid,
        "urgent-community-response",
        "urgent",
        "BS5",
        '{"frailty": false}',
        now,
        "[]",
        "RXA01",
        "rapid-response",
        1,
        did,
        cid,
        "routed",
    )
    decision = (
        did,
        rid,
        1,
        "routed",
        "RXA01",
        "rapid-response",
        "east-bristol",
        "ucr-east",
        1,
        None,
        now,
        eid,
        None,
        None,
        None,
    )
    clocks = [
        (
            f"{rid}:{kind}:1",
            rid,
            kind,
            1,
            "RXA01",
            "rapid-response",
            "urgent-community-response",
            "urgent",
            "ucr:urgent",
            True,
            cid,
            now,
            now,
            now,
            None,
            None,
            None,
            None,
            now,
        )
        for kind in ("acceptance", "response")
    ]
    outbox = [(eid, topic, rid.encode(), value, headers, now, None) for topic in TOPICS]
    inbox = ("routing", new_id(), "referrals.events.v1", 0, i, now)
    return case, decision, clocks, outbox, inbox


def storage_floor(count: int, workdir: Path) -> float:
    """CPU µs per event: the rows routing must store, raw sqlite3, batched. Building the
    tuples is not counted."""
    path = workdir / f"floor-{uuid.uuid4().hex[:6]}.db"
    fresh_schema(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    now = datetime.now(UTC).isoformat(sep=" ")[:26]
    value = b"x" * 480  # a ReferralRouted's JSON is ~480 bytes
    headers = json.dumps([["ce_id", str(uuid.uuid4())], ["traceparent", "00-" + "a" * 55]])
    cpu = 0.0
    for first in range(0, count, BATCH):
        batch = [
            event_rows(i, now, value, headers) for i in range(first, min(first + BATCH, count))
        ]
        start = time.process_time()
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            f"INSERT INTO routing_case VALUES ({','.join('?' * 13)})", [e[0] for e in batch]
        )
        db.executemany(
            f"INSERT INTO routing_decision VALUES ({','.join('?' * 15)})", [e[1] for e in batch]
        )
        db.executemany(
            f"INSERT INTO sla_clock VALUES ({','.join('?' * 19)})", [c for e in batch for c in e[2]]
        )
        db.executemany(
            "INSERT INTO outbox (event_id, topic, key, value, headers, created_at, sent_at) "
            "VALUES (?,?,?,?,?,?,?)",
            [o for e in batch for o in e[3]],
        )
        db.executemany("INSERT INTO inbox VALUES (?,?,?,?,?,?)", [e[4] for e in batch])
        db.execute(
            "INSERT INTO organisation_load VALUES ('RVJ01', '2026-11-23', ?) ON CONFLICT "
            "(ods_code, day) DO UPDATE SET assigned = assigned + excluded.assigned",
            (len(batch),),
        )
        db.execute("COMMIT")
        cpu += time.process_time() - start
    db.close()
    return cpu / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bootstrap", help="an existing broker (else one is started)")
    args = parser.parse_args()
    topic = f"bench.floor.{uuid.uuid4().hex[:8]}"
    with (
        tempfile.TemporaryDirectory(prefix="rx-floor-") as tmp,
        broker(args.bootstrap, Path(tmp)) as (bootstrap, _pids),
    ):
        from devstack.topics import ensure_topics

        ensure_topics(bootstrap, {topic: 3})  # as routing_backlog.py's topic
        produce(bootstrap, topic, args.count)
        recs = records(min(args.count, 5_000))
        rows: list[dict[str, float]] = []
        for n in range(1, args.rounds + 1):
            timed, _seconds, cpu = run_baseline(bootstrap, topic, args.count)
            baseline = cpu / timed * 1e6
            contracts = contracts_floor(recs)
            storage = storage_floor(args.count, Path(tmp))
            bound = baseline / (baseline + contracts + storage)
            rows.append(
                {"baseline": baseline, "contracts": contracts, "storage": storage, "bound": bound}
            )
            print(
                f"round {n}: plain consumer {baseline:.1f} µs/record; floor: contracts "
                f"{contracts:.1f} + storage {storage:.1f} µs/event; best possible ratio "
                f"{bound:.0%}",
                flush=True,
            )
    med = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
    print(f"\nMedians over {args.rounds} rounds ({args.count:,} events, CPU time):\n")
    print("| plain consumer | contracts floor | storage floor | best possible ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| {med['baseline']:.1f} µs/record | {med['contracts']:.1f} µs/event | "
        f"{med['storage']:.1f} µs/event | {med['bound']:.0%} | >= {TARGET_RATIO:.0%} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
