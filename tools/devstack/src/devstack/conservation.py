"""Conservation check: after a run, nothing accepted was lost and nothing took effect twice.

The platform's promise (docs/design.md, "Delivery guarantees") as figures, for tests to assert on
and benchmarks to print:

- every referral the API accepted is stored, routed (or marked unroutable), recorded as such
  by the referrals service, and in the audit log;
- every event a service committed to its outbox reached the audit log, and every event routing
  staged for a provider topic is on that topic (read from its start outside any consumer group);
- no duplicate effects: one history row per referral and sequence, one routing decision per
  referral and attempt, one audit entry per event id and per referral event sequence;
- the audit chain verifies;
- per-referral order: on every provider topic, each referral's events arrive in the order
  routing committed them (its outbox order; a republished duplicate after the first copy does
  not count against it);
- capacity: no organisation was given more referrals on a local day than its daily capacity
  (counting both routing's load counter and its decisions not released);
- with the notify database: every lifecycle event in scope reached notify and none is still
  held back waiting for its predecessor; each subscription's event numbers run 1..N with no
  gap and no event numbered twice; and every active subscription's endpoint acknowledged all
  of them (a subscription in ``error`` keeps its events for ``$events``: counted, not pending).

This is the harness's privilege: it reads each service's own database read-only, by URL, with
plain SQL (no service's tables are imported), and takes the chain verdict from the audit
service (:func:`verify_with_api`). Only referrals in scope are looked at — those the caller
says the API accepted, and those stored in this referrals database — so a stack sharing its
broker with others is judged on its own referrals alone.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from kafka import KafkaConsumer, TopicPartition
from rx_config.kafka_auth import KafkaAuth
from rx_contracts.topics import REFERRAL_EVENTS, ROUTING_DECISIONS, ROUTING_SLA
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from .topics import reader

SAMPLE = 5
"""How many ids a problem line shows."""

LONDON = ZoneInfo("Europe/London")
"""Daily capacity is counted per local day."""


@dataclass(frozen=True)
class Databases:
    """SQLAlchemy URLs of each service's own database."""

    referrals: str
    routing: str
    audit: str
    notify: str | None = None
    """The notify service's, when its deliveries are to be checked too."""

    @classmethod
    def of(cls, data_dir: Path, urls: Mapping[str, str]) -> Databases:
        """A stack's databases: ``urls`` (service -> URL, e.g. PostgreSQL) where given, the
        SQLite files a :class:`devstack.stack.Stack` keeps in ``data_dir`` otherwise."""
        files = cls.sqlite_in(data_dir)
        return cls(
            urls.get("referrals", files.referrals),
            urls.get("routing", files.routing),
            urls.get("audit", files.audit),
            notify=urls.get("notify", files.notify),
        )

    @classmethod
    def sqlite_in(cls, data_dir: Path) -> Databases:
        """The SQLite files a :class:`devstack.stack.Stack` keeps in ``data_dir``."""
        referrals, routing, audit = (
            f"sqlite:///{data_dir / name}.db" for name in ("referrals", "routing", "audit")
        )
        return cls(referrals, routing, audit, notify=f"sqlite:///{data_dir / 'notify.db'}")


@dataclass(frozen=True)
class ChainVerdict:
    """What the audit service says of its chain."""

    ok: bool
    entries: int
    problem: str | None = None


@dataclass
class Report:
    """The outcome of one check. ``ok`` when nothing is missing, nothing is duplicated, no
    outbox row is still waiting and the chain verifies."""

    stages: dict[str, int]
    """Referrals counted at each stage: accepted, stored, routed, recorded, audited."""
    missing: dict[str, list[str]]
    """Stage (or ``audit events`` / a provider topic) -> ids that did not get there."""
    duplicates: dict[str, list[str]]
    """Kind of effect -> what took effect more than once."""
    pending: dict[str, int]
    """Service -> its outbox rows not yet published (for in-scope referrals)."""
    outcomes: dict[str, int] = field(default_factory=dict)
    """Referrals by final status in the referrals service (for the reader)."""
    wire_duplicates: dict[str, int] = field(default_factory=dict)
    """Topic -> events seen more than once by a fresh consumer. Delivery is at-least-once on
    the wire (a relay killed between publishing and marking republishes), exactly-once in
    effect, so these are reported, not failures."""
    chain: ChainVerdict | None = None
    topics_read: bool = False
    deliveries: dict[str, int] = field(default_factory=dict)
    """With notify: subscriptions, events numbered for them, acknowledged, kept in error."""
    out_of_order: dict[str, list[str]] = field(default_factory=dict)
    """Provider topic -> referrals whose events arrived in another order than committed."""
    over_capacity: list[str] = field(default_factory=list)
    """``<org> on <day>: <n> given, capacity <c>`` for every day an organisation was given
    more than its daily capacity."""

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        """One line per thing that is wrong."""
        lines = [
            f"{len(ids)} missing at {stage}: {', '.join(ids[:SAMPLE])}"
            for stage, ids in self.missing.items()
            if ids
        ]
        lines += [
            f"{len(items)} duplicate {kind}: {', '.join(items[:SAMPLE])}"
            for kind, items in self.duplicates.items()
            if items
        ]
        lines += [
            f"{n} {service} outbox rows unpublished" for service, n in self.pending.items() if n
        ]
        lines += [
            f"{len(ids)} referrals out of order on {topic}: {', '.join(ids[:SAMPLE])}"
            for topic, ids in self.out_of_order.items()
            if ids
        ]
        lines += [f"over capacity: {line}" for line in self.over_capacity]
        if self.chain is None:
            lines.append("the audit chain was not verified")
        elif not self.chain.ok:
            lines.append(f"the audit chain does not verify: {self.chain.problem}")
        return lines

    def summary(self) -> str:
        """A few lines for people: the counts per stage, then every problem (or 'conserved')."""
        stages = ", ".join(f"{stage} {n}" for stage, n in self.stages.items())
        outcomes = ", ".join(f"{status} {n}" for status, n in sorted(self.outcomes.items()))
        wire = sum(self.wire_duplicates.values())
        delivered = ", ".join(f"{what} {n}" for what, n in self.deliveries.items())
        chain = (
            "not verified"
            if self.chain is None
            else f"{'verifies' if self.chain.ok else 'BROKEN'} ({self.chain.entries} entries)"
        )
        lines = [
            f"referrals: {stages}",
            f"final states: {outcomes or 'none'}",
            f"audit chain {chain}; events seen twice on the wire (at-least-once): {wire}",
        ]
        if delivered:
            lines.append(f"notifications: {delivered}")
        return "\n".join([*lines, *(self.problems() or ["conserved: nothing lost, nothing twice"])])


ChainCheck = Callable[[], ChainVerdict]


def verify_with_api(audit_url: str, headers: Mapping[str, str], timeout: float = 60) -> ChainCheck:
    """A chain check that asks the audit service (``GET /audit/verify``, an ops token in
    ``headers``); an unreachable service or an error answer is a failed verdict."""

    def check() -> ChainVerdict:
        try:
            response = httpx.get(
                f"{audit_url}/audit/verify", headers=dict(headers), timeout=timeout
            )
        except httpx.HTTPError as exc:
            return ChainVerdict(False, 0, f"the audit service did not answer: {exc!r}")
        if response.status_code != 200:
            return ChainVerdict(False, 0, f"GET /audit/verify: {response.status_code}")
        body = response.json()
        return ChainVerdict(bool(body["ok"]), int(body["entries"]), body.get("problem"))

    return check


def read_only_engine(url: str) -> Engine:
    """An engine that cannot write: SQLite opened read-only, PostgreSQL sessions read-only."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return create_engine(
            f"sqlite:///file:{parsed.database}?mode=ro&uri=true",
            connect_args={"timeout": 30},
        )
    return create_engine(
        url, connect_args={"options": "-c default_transaction_read_only=on"}, pool_pre_ping=True
    )


class ConservationCheck:
    """Checks one stack's databases (and, optionally, its provider topics) on demand."""

    def __init__(
        self,
        databases: Databases,
        chain: ChainCheck,
        *,
        bootstrap_servers: str | None = None,
        kafka_auth: Mapping[str, KafkaAuth] | None = None,
    ) -> None:
        """``bootstrap_servers``: read the provider topics too (``kafka_auth`` maps a provider
        topic to the principal that may read it, for a broker with ACLs)."""
        self.databases = databases
        self.chain = chain
        self.bootstrap_servers = bootstrap_servers
        self.kafka_auth = dict(kafka_auth or {})

    def check(self, accepted: Iterable[str] = (), *, read_topics: bool = True) -> Report:
        """One look at everything. ``accepted``: ids the API answered 201 for."""
        accepted_ids = set(accepted)
        names = ["referrals", "routing", "audit"] + (["notify"] if self.databases.notify else [])
        engines = {name: read_only_engine(getattr(self.databases, name)) for name in names}
        try:
            report = _check_databases(engines, accepted_ids)
            report.over_capacity = _over_capacity(engines["routing"])
            if "notify" in engines:
                _check_notify(engines, accepted_ids | _scope_of(self.databases.referrals), report)
        finally:
            for engine in engines.values():
                engine.dispose()
        settled = not any(report.missing.values()) and not any(report.pending.values())
        if not settled:
            return report  # still draining: reading topics and the chain can wait
        if read_topics and self.bootstrap_servers:
            expected = self._expected_on_provider_topics()
            seen = read_in_order(self.bootstrap_servers, list(expected), self.kafka_auth)
            for topic, committed in expected.items():
                read = seen.get(topic, TopicRead())
                ids = {event_id for order in committed.values() for event_id in order}
                report.missing[topic] = sorted(i for i in ids if not read.counts[i])
                report.wire_duplicates[topic] = sum(1 for i in ids if read.counts[i] > 1)
                report.out_of_order[topic] = out_of_order(committed, read.order)
            report.topics_read = True
        report.chain = self.chain()
        return report

    def _expected_on_provider_topics(self) -> dict[str, dict[str, list[str]]]:
        """Provider topic -> referral -> the event ids routing staged for it, in the order it
        committed them, for the referrals in scope."""
        scope = _scope_of(self.databases.referrals)
        engine = read_only_engine(self.databases.routing)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT event_id, topic, key FROM outbox "
                        "WHERE topic LIKE 'provider.%' ORDER BY id"
                    )
                ).all()
        finally:
            engine.dispose()
        expected: dict[str, dict[str, list[str]]] = {}
        for event_id, topic, key in rows:
            if _text(key) in scope:
                expected.setdefault(topic, {}).setdefault(_text(key), []).append(event_id)
        return expected

    def wait(
        self,
        accepted: Iterable[str] = (),
        *,
        timeout: float = 120,
        every: float = 1.0,
        progress: Callable[[Report], None] | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> Report:
        """Look again until the report is ok or ``timeout`` passes; the last report either way
        (bounded polling: the pipeline drains at its own pace after a fault). ``ready``: only
        accept an ok report taken while it holds (e.g. the load driver is idle)."""
        accepted_ids = set(accepted)
        deadline = time.monotonic() + timeout
        while True:
            calm = ready is None or ready()
            report = self.check(accepted_ids)
            if progress is not None:
                progress(report)
            done = report.topics_read or not self.bootstrap_servers
            if report.ok and done and calm and (ready is None or ready()):
                return report
            if time.monotonic() + every > deadline:
                return report
            time.sleep(every)


def out_of_order(committed: Mapping[str, list[str]], seen: Mapping[str, list[str]]) -> list[str]:
    """Referrals whose events, as first seen on a topic, are not in their committed order
    (events not seen at all are the missing check's business, not this one's)."""
    wrong = []
    for key, order in committed.items():
        first_seen = list(dict.fromkeys(e for e in seen.get(key, []) if e in set(order)))
        arrived = set(first_seen)
        if first_seen != [e for e in order if e in arrived]:
            wrong.append(key)
    return sorted(wrong)


def _over_capacity(routing: Engine) -> list[str]:
    """Each organisation-day given more than the organisation's daily capacity: by routing's
    own counter, and by its routing decisions not released (rejected, redirected, re-routed
    or timed out), counted per Europe/London day."""
    with routing.connect() as conn:
        capacity: dict[str, int] = dict(
            conn.execute(
                text(
                    "SELECT ods_code, daily_capacity FROM organisation "
                    "WHERE daily_capacity IS NOT NULL"
                )
            ).all()
        )
        counted = conn.execute(text("SELECT ods_code, day, assigned FROM organisation_load")).all()
        held = conn.execute(
            text(
                "SELECT assigned_org, decided_at FROM routing_decision "
                "WHERE outcome = 'routed' AND released_at IS NULL AND assigned_org IS NOT NULL"
            )
        ).all()
    given: Counter[tuple[str, str]] = Counter()
    for org, decided_at in held:
        given[(org, _london_day(decided_at))] += 1
    lines = []
    for org, day, assigned in counted:
        if org in capacity and assigned > capacity[org]:
            lines.append(f"{org} on {day}: {assigned} counted, capacity {capacity[org]}")
    for (org, day), n in sorted(given.items()):
        if org in capacity and n > capacity[org]:
            lines.append(f"{org} on {day}: {n} given, capacity {capacity[org]}")
    return lines


def _london_day(at: datetime | str) -> str:
    if isinstance(at, str):  # SQLite hands back text
        at = datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(LONDON).date().isoformat()


def _scope_of(referrals_url: str) -> set[str]:
    engine = read_only_engine(referrals_url)
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(text("SELECT id FROM referral"))}
    finally:
        engine.dispose()


def _text(key: Any) -> str:
    return bytes(key).decode() if isinstance(key, bytes | bytearray | memoryview) else str(key)


def _dupes(counter: Counter[Any]) -> list[str]:
    return sorted(
        str(k if not isinstance(k, tuple) else "/".join(map(str, k)))
        for k, n in counter.items()
        if n > 1
    )


def _rows_in(engine: Engine, query: str, scope: set[str]) -> list[Any]:
    """The rows of ``query`` whose first column (a referral id) is in ``scope``."""
    with engine.connect() as conn:
        return [row for row in conn.execute(text(query)).all() if row[0] in scope]


def _check_databases(engines: Mapping[str, Engine], accepted: set[str]) -> Report:
    with engines["referrals"].connect() as conn:
        referrals: dict[str, str] = dict(
            conn.execute(text("SELECT id, status FROM referral")).all()
        )
        history = conn.execute(
            text("SELECT referral_id, sequence, event_id FROM referral_transition")
        ).all()
        ref_outbox = conn.execute(text("SELECT event_id, key, sent_at FROM outbox")).all()
    scope = accepted | set(referrals)
    decisions = _rows_in(
        engines["routing"], "SELECT referral_id, attempt, event_id FROM routing_decision", scope
    )
    with engines["routing"].connect() as conn:
        routing_outbox = conn.execute(text("SELECT event_id, key, sent_at FROM outbox")).all()
    audit = _rows_in(
        engines["audit"],
        "SELECT referral_id, event_id, topic, type, payload FROM audit_entry",
        scope,
    )

    routed = {row[0] for row in decisions}
    audited_submitted = {row[0] for row in audit if row[3].endswith(".ReferralSubmitted.v1")}
    recorded = {rid for rid, status in referrals.items() if status != "submitted"}
    audit_events = Counter(row[1] for row in audit)
    outbox_events: set[str] = set()
    pending: dict[str, int] = {}
    for service, rows in (("referrals", ref_outbox), ("routing", routing_outbox)):
        in_scope = [row for row in rows if _text(row[1]) in scope]
        outbox_events |= {row[0] for row in in_scope}
        pending[service] = sum(1 for row in in_scope if row[2] is None)

    # Two audit entries for one step of one referral would be one change published twice
    # under different event ids: the inbox would not catch that, the sequence does.
    sequences = Counter(
        (row[0], json.loads(row[4]).get("sequence")) for row in audit if row[2] == REFERRAL_EVENTS
    )

    return Report(
        stages={
            "accepted": len(accepted),
            "stored": len(referrals),
            "routed": len(routed),
            "recorded": len(recorded),
            "audited": len(audited_submitted),
        },
        missing={
            "stored": sorted(accepted - set(referrals)),
            "acknowledged": sorted(set(referrals) - accepted) if accepted else [],
            "routed": sorted(scope - routed),
            "recorded": sorted(scope - recorded),
            "audited": sorted(scope - audited_submitted),
            "audit events": sorted(outbox_events - set(audit_events)),
        },
        duplicates={
            "history rows (referral/sequence)": _dupes(Counter((r[0], r[1]) for r in history)),
            "history rows (event)": _dupes(Counter(r[2] for r in history if r[2])),
            "routing decisions (referral/attempt)": _dupes(
                Counter((r[0], r[1]) for r in decisions)
            ),
            "routing decisions (event)": _dupes(Counter(r[2] for r in decisions)),
            "audit entries (event)": _dupes(audit_events),
            "audit entries (referral/sequence)": _dupes(sequences),
        },
        pending=pending,
        outcomes=dict(Counter(referrals[r] for r in scope if r in referrals)),
    )


NOTIFY_TOPICS = (REFERRAL_EVENTS, ROUTING_DECISIONS, ROUTING_SLA)
"""What notify consumes: every event on them that is about a referral in scope must reach it."""


def _check_notify(engines: Mapping[str, Engine], scope: set[str], report: Report) -> None:
    """Deliveries: see the module's docstring. Adds to ``report``'s missing, duplicates and
    pending, and fills its ``deliveries`` figures."""
    published: set[str] = set()
    for service in ("referrals", "routing"):
        with engines[service].connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT event_id, topic, key, sent_at FROM outbox WHERE topic IN (:a, :b, :c)"
                ),
                dict(zip("abc", NOTIFY_TOPICS, strict=True)),
            ).all()
        published |= {row[0] for row in rows if _text(row[2]) in scope and row[3] is not None}
    with engines["notify"].connect() as conn:
        events: dict[str, str] = {
            row[0]: row[1]
            for row in conn.execute(text("SELECT event_id, placement FROM notify_event")).all()
        }
        subscriptions = conn.execute(
            text(
                "SELECT id, status, events_since_start, delivered_through, deleted_at "
                "FROM notify_subscription"
            )
        ).all()
        numbered = conn.execute(
            text("SELECT subscription_id, event_number, event_id FROM notify_notification")
        ).all()
    report.missing["notify events"] = sorted(published - set(events))
    held = sorted(e for e, placement in events.items() if placement == "held")
    report.missing["notify held back"] = held
    numbers: dict[str, list[int]] = {}
    for sid, number, _event in numbered:
        numbers.setdefault(sid, []).append(number)
    gaps = [
        sid
        for sid, _status, count, _through, _deleted in subscriptions
        if sorted(numbers.get(sid, [])) != list(range(1, count + 1))
    ]
    report.missing["notification numbers (gapless)"] = sorted(gaps)
    report.duplicates["notifications (subscription/event)"] = _dupes(
        Counter((row[0], row[2]) for row in numbered)
    )
    waiting = [
        (count - through)
        for _sid, status, count, through, deleted in subscriptions
        if status in ("active", "requested") and deleted is None
    ]
    report.pending["notify deliveries"] = sum(waiting)
    report.deliveries = {
        "subscriptions": len(subscriptions),
        "numbered": len(numbered),
        "acknowledged": sum(min(through, count) for _s, _st, count, through, _d in subscriptions),
        "kept in error": sum(
            count - through for _s, status, count, through, _d in subscriptions if status == "error"
        ),
    }


@dataclass
class TopicRead:
    """What a topic holds: how many times each event id is on it, and each key's event ids in
    the order they are on it (one key stays on one partition)."""

    counts: Counter[str] = field(default_factory=Counter)
    order: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def read_events(
    bootstrap_servers: str,
    topics: list[str],
    auth: Mapping[str, KafkaAuth] | None = None,
    timeout: float = 30,
) -> dict[str, Counter[str]]:
    """Topic -> how many times each event id (``ce_id`` header) is on it, read from the start
    to the current end by a fresh consumer per topic."""
    read = read_in_order(bootstrap_servers, topics, auth, timeout)
    return {topic: what.counts for topic, what in read.items()}


def read_in_order(
    bootstrap_servers: str,
    topics: list[str],
    auth: Mapping[str, KafkaAuth] | None = None,
    timeout: float = 30,
) -> dict[str, TopicRead]:
    """Topic -> :class:`TopicRead`, read from the start to the current end by a fresh
    consumer per topic."""
    seen: dict[str, TopicRead] = {}
    for topic in topics:
        consumer = reader(bootstrap_servers, "devstack-conservation", (auth or {}).get(topic))
        try:
            seen[topic] = _read_to_end(consumer, topic, time.monotonic() + timeout)
        finally:
            consumer.close(autocommit=False)
    return seen


def _read_to_end(consumer: KafkaConsumer, topic: str, deadline: float) -> TopicRead:
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    end = consumer.end_offsets(partitions)
    read = TopicRead()
    while any(consumer.position(tp) < end[tp] for tp in partitions):
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {topic} to its end took too long")
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                headers = dict(record.headers or [])
                if "ce_id" in headers:
                    event_id = headers["ce_id"].decode()
                    read.counts[event_id] += 1
                    read.order[_text(record.key)].append(event_id)
    return read
