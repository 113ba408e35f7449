"""Per-event statements of the consumers, each run the way it was built before and the way it
is built now, in one process on one database, alternating: CPU µs per call.

- ``clock stop``: routing's ``ClockRepository.stop`` (every accept, start, complete, reroute
  stops a referral's clocks) — an UPDATE built per call and run through SQLAlchemy, against
  the statement built once per number of kinds and run on the driver's cursor;
- ``inbox lookup``: the inbox's "which of this batch's event ids were applied already" for a
  batch of one event (every batch at low rates) — an expanding IN compiled per call, against
  one statement per power-of-two size on the driver's cursor;
- ``buffer set-up``: a batch's session getting its write buffer (every consumer, every
  batch) — four listeners added to the session, against listeners on the Session class
  registered once.

Each round runs --calls calls of each variant (order alternating between rounds), each call in
its own transaction as a consumer's batch of one; CPU is ``time.process_time``. Medians and the
new/old ratio over --rounds.

    .venv/bin/python bench/consumer_statements.py [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

STARTED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def clock_rows(referral_ids: list[str]) -> list[dict[str, Any]]:
    """A running acceptance and response clock per referral."""
    return [
        {
            "id": f"{kind}:{rid}",
            "referral_id": rid,
            "kind": kind,
            "service_type": "urgent_community_response",
            "priority": "urgent",
            "policy_id": "bench",
            "started_at": STARTED,
            "deadline_at": STARTED + timedelta(hours=2),
            "next_fire_at": STARTED + timedelta(hours=1),
        }
        for rid in referral_ids
        for kind in ("acceptance", "response")
    ]


def clock_stop(engine: Any, calls: int, rounds: int) -> list[dict[str, float]]:
    from routing.adapters.clocks import ClockRepository
    from routing.adapters.tables import ClockRow, table
    from rx_contracts import ClockKind
    from sqlalchemy import update
    from sqlmodel import Session

    clocks = table(ClockRow)
    kinds = (ClockKind.ACCEPTANCE, ClockKind.RESPONSE)
    at = STARTED + timedelta(minutes=5)

    def old(referral_id: str) -> None:
        with Session(engine) as session:
            session.connection().execute(
                update(clocks)
                .where(
                    clocks.c.referral_id == referral_id,
                    clocks.c.kind.in_([k.value for k in kinds]),
                    clocks.c.stopped_at.is_(None),
                )
                .values(stopped_at=at, stop_reason="accepted", next_fire_at=None)
            )
            session.commit()

    def new(referral_id: str) -> None:
        with Session(engine) as session:
            ClockRepository(session).stop(referral_id, kinds, "accepted", at)
            session.commit()

    return _rounds(engine, calls, rounds, {"old": old, "new": new}, clocks)


def inbox_lookup(engine: Any, calls: int, rounds: int) -> list[dict[str, float]]:
    from rx_contracts import examples, wrap
    from rx_messaging.consumer import INBOX, InboxConsumer
    from sqlalchemy import bindparam, select
    from sqlmodel import Session

    expanding = select(INBOX.c.event_id).where(
        INBOX.c.consumer == bindparam("consumer"),
        INBOX.c.event_id.in_(bindparam("event_ids", expanding=True)),
    )
    consumer = InboxConsumer("bench", None, engine, lambda *_: None, None)  # type: ignore[arg-type]
    envelope = wrap(examples.referral_submitted(str(uuid.uuid4())), source="/bench")

    def old(event_id: str) -> None:
        with Session(engine) as session:
            found = session.connection().execute(
                expanding, {"consumer": "bench", "event_ids": [event_id]}
            )
            set(found.scalars())
            session.commit()

    def new(event_id: str) -> None:
        with Session(engine) as session:
            consumer._already_applied(session, [(None, envelope)])  # type: ignore[list-item]
            session.commit()

    return _rounds(engine, calls, rounds, {"old": old, "new": new}, None)


def buffer_setup(engine: Any, calls: int, rounds: int) -> list[dict[str, float]]:
    from rx_messaging import buffer
    from sqlalchemy import event
    from sqlmodel import Session

    def old(_: str) -> None:
        with Session(engine) as session:
            session.info["bench.buffer"] = object()
            event.listen(session, "after_transaction_create", buffer._before_savepoint)
            event.listen(session, "before_commit", buffer._before_commit)
            event.listen(session, "after_soft_rollback", buffer._after_rollback)
            event.listen(session, "after_transaction_end", buffer._after_transaction_end)
            session.begin()
            session.commit()

    def new(_: str) -> None:
        with Session(engine) as session:
            buffer.write_buffer(session)
            session.commit()

    return _rounds(engine, calls, rounds, {"old": old, "new": new}, None)


def _rounds(
    engine: Any,
    calls: int,
    rounds: int,
    variants: dict[str, Callable[[str], None]],
    clocks: Any,
) -> list[dict[str, float]]:
    """Each variant ``calls`` times per round, on referrals of its own (with running clocks
    when ``clocks`` is given, checked stopped afterwards)."""
    out = []
    for n in range(rounds):
        order = list(variants) if n % 2 == 0 else list(reversed(variants))
        got: dict[str, float] = {}
        for name in order:
            ids = [str(uuid.uuid4()) for _ in range(calls)]
            if clocks is not None:
                with engine.begin() as conn:
                    conn.execute(clocks.insert(), clock_rows(ids))
            variant = variants[name]
            started = time.process_time()
            for rid in ids:
                variant(rid)
            got[name] = 1e6 * (time.process_time() - started) / calls
            if clocks is not None:
                with engine.connect() as conn:
                    running = conn.execute(
                        clocks.select().where(
                            clocks.c.referral_id.in_(ids), clocks.c.stopped_at.is_(None)
                        )
                    ).all()
                if running:
                    raise RuntimeError(f"{name}: {len(running)} clocks left running")
        out.append(got)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from routing_backlog import prepare_database

    with tempfile.TemporaryDirectory(prefix="consumer-statements-") as tmp:
        container = prepare_database(Path(tmp) / "routing.db")
        measured = (
            ("clock stop", clock_stop),
            ("inbox lookup", inbox_lookup),
            ("buffer set-up", buffer_setup),
        )
        for what, run in measured:
            rounds = run(container.engine, args.calls, args.rounds)
            for n, got in enumerate(rounds, 1):
                print(
                    f"{what} round {n}: old {got['old']:.0f} µs, new {got['new']:.0f} µs, "
                    f"ratio {got['new'] / got['old']:.2f}",
                    flush=True,
                )
            old = statistics.median(r["old"] for r in rounds)
            new = statistics.median(r["new"] for r in rounds)
            ratio = statistics.median(r["new"] / r["old"] for r in rounds)
            print(f"{what}: median old {old:.0f} µs, new {new:.0f} µs per call; ratio {ratio:.2f}")
        container.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
