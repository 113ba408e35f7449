"""The conservation check finds what a run lost or did twice, and passes a run that did
neither. The three databases are the services' real schemas (their migrations), filled with
the rows a referral's journey leaves behind; each test breaks one thing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from audit.adapters.migrate import MIGRATIONS as AUDIT
from devstack.conservation import ChainVerdict, ConservationCheck, Databases, Report, out_of_order
from referrals.adapters.migrate import MIGRATIONS as REFERRALS
from routing.adapters.migrate import MIGRATIONS as ROUTING
from rx_messaging.database import make_engine
from sqlalchemy import text

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SUBMITTED = "rx.referrals.ReferralSubmitted.v1"
ROUTED = "rx.routing.ReferralRouted.v1"


class Run:
    """Writes what the services would have written for each referral of a run."""

    def __init__(self, tmp_path: Path) -> None:
        self.urls = Databases(
            *(f"sqlite:///{tmp_path / name}.db" for name in ("referrals", "routing", "audit"))
        )
        for migrations, url in zip(
            (REFERRALS, ROUTING, AUDIT),
            (self.urls.referrals, self.urls.routing, self.urls.audit),
            strict=True,
        ):
            migrations.upgrade_database(url)
        self.sequence = 0

    def sql(
        self, database: str, statement: str, rows: list[dict[str, Any]] | dict[str, Any]
    ) -> None:
        engine = make_engine(getattr(self.urls, database))
        try:
            with engine.begin() as conn:
                conn.execute(text(statement), rows)
        finally:
            engine.dispose()

    def outbox(self, database: str, event_id: str, topic: str, rid: str, sent: bool = True) -> None:
        self.sql(
            database,
            "INSERT INTO outbox (event_id, topic, key, value, headers, created_at, sent_at) "
            "VALUES (:e, :t, :k, :v, '[]', :now, :sent)",
            {
                "e": event_id,
                "t": topic,
                "k": rid.encode(),
                "v": b"{}",
                "now": NOW,
                "sent": NOW if sent else None,
            },
        )

    def audit(self, event_id: str, rid: str, topic: str, type_: str, sequence: int) -> None:
        self.sequence += 1
        self.sql(
            "audit",
            'INSERT INTO audit_entry (sequence, event_id, topic, partition, "offset", type, '
            "referral_id, actor_org, occurred_at_us, recorded_at_us, payload, payload_digest, "
            "prev_hash, hash) VALUES (:s, :e, :t, 0, :s, :ty, :r, NULL, 0, 0, :p, '', '', '')",
            {
                "s": self.sequence,
                "e": event_id,
                "t": topic,
                "ty": type_,
                "r": rid,
                "p": json.dumps({"sequence": sequence}),
            },
        )

    def referral(self, *, routed: bool = True, audited: bool = True, status: str = "routed") -> str:
        """One referral submitted and routed, every event relayed and audited."""
        rid = str(uuid.uuid4())
        submitted, routed_event = str(uuid.uuid4()), str(uuid.uuid4())
        self.sql(
            "referrals",
            "INSERT INTO referral (id, status, version, sequence, referrer_org, patient_postcode, "
            "patient_nhs_number_verification, national_data_opt_out, service_type, priority, "
            "care_home_resident, frailty, end_of_life, rejected_by, created_at, due_at, "
            "updated_at) VALUES (:id, :status, 2, 1, 'B81001', 'BS5 0AA', 'absent', 0, "
            "'urgent-community-response', 'urgent', 0, 0, 0, '[]', :now, :now, :now)",
            {"id": rid, "status": status if routed else "submitted", "now": NOW},
        )
        self.history(rid, 1, submitted)
        self.outbox("referrals", submitted, "referrals.events.v1", rid)
        if audited:
            self.audit(submitted, rid, "referrals.events.v1", SUBMITTED, 1)
        if routed:
            self.decision(rid, 1, routed_event)
            self.history(rid, 0, routed_event)
            self.outbox("routing", routed_event, "routing.decisions.v1", rid)
            if audited:
                self.audit(routed_event, rid, "routing.decisions.v1", ROUTED, 0)
        return rid

    def history(self, rid: str, sequence: int, event_id: str) -> None:
        self.sql(
            "referrals",
            "INSERT INTO referral_transition (referral_id, sequence, action, to_status, actor_org, "
            "event_id, at) VALUES (:r, :s, 'x', 'x', 'B81001', :e, :now)",
            {"r": rid, "s": sequence, "e": event_id, "now": NOW},
        )

    def decision(
        self,
        rid: str,
        attempt: int,
        event_id: str,
        org: str | None = None,
        released: bool = False,
        at: datetime = NOW,
    ) -> None:
        self.sql(
            "routing",
            "INSERT INTO routing_decision (id, referral_id, attempt, outcome, assigned_org, "
            "decided_at, event_id, released_at) VALUES (:id, :r, :a, 'routed', :org, :at, :e, "
            ":released)",
            {
                "id": str(uuid.uuid4()),
                "r": rid,
                "a": attempt,
                "org": org,
                "at": at,
                "e": event_id,
                "released": NOW if released else None,
            },
        )

    def organisation(self, ods_code: str, daily_capacity: int | None) -> None:
        self.sql(
            "routing",
            "INSERT INTO organisation (ods_code, name, provider_type, localities, "
            "daily_capacity, active, updated_at) VALUES (:o, 'x', 'rapid-response', '[]', :c, "
            "1, :now)",
            {"o": ods_code, "c": daily_capacity, "now": NOW},
        )

    def check(self, accepted: list[str], chain: ChainVerdict | None = None) -> Report:
        verdict = chain or ChainVerdict(True, self.sequence)
        return ConservationCheck(self.urls, lambda: verdict).check(accepted)


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


def test_a_run_that_lost_nothing_and_did_nothing_twice_is_conserved(run: Run) -> None:
    accepted = [run.referral() for _ in range(3)] + [run.referral(status="unroutable")]
    report = run.check(accepted)
    assert report.ok, report.summary()
    assert report.stages == {"accepted": 4, "stored": 4, "routed": 4, "recorded": 4, "audited": 4}
    assert report.outcomes == {"routed": 3, "unroutable": 1}
    assert "conserved" in report.summary()


def test_a_referral_the_api_acknowledged_but_never_stored_is_missing(run: Run) -> None:
    accepted = [run.referral(), "ghost-referral"]
    report = run.check(accepted)
    assert not report.ok
    assert report.missing["stored"] == ["ghost-referral"]
    assert "1 missing at stored: ghost-referral" in report.problems()


def test_a_stored_referral_no_client_was_told_of_is_reported(run: Run) -> None:
    known = run.referral()
    unknown = run.referral()
    report = run.check([known])
    assert report.missing["acknowledged"] == [unknown]


def test_a_referral_routing_never_decided_on_is_missing_at_routed_and_recorded(run: Run) -> None:
    stuck = run.referral(routed=False)
    report = run.check([run.referral(), stuck])
    assert report.missing["routed"] == [stuck]
    assert report.missing["recorded"] == [stuck]
    assert report.stages["routed"] == 1


def test_events_missing_from_the_audit_log_are_named(run: Run) -> None:
    unaudited = run.referral(audited=False)
    report = run.check([unaudited])
    assert report.missing["audited"] == [unaudited]
    assert len(report.missing["audit events"]) == 2


def test_an_unpublished_outbox_row_means_not_yet_conserved(run: Run) -> None:
    rid = run.referral()
    run.outbox("referrals", str(uuid.uuid4()), "referrals.events.v1", rid, sent=False)
    report = run.check([rid])
    assert report.pending["referrals"] == 1
    assert any("unpublished" in line for line in report.problems())
    assert report.chain is None, "the chain is verified once the pipeline has drained"


def test_a_step_recorded_twice_is_a_duplicate_effect(run: Run) -> None:
    rid = run.referral()
    run.history(rid, 1, str(uuid.uuid4()))
    report = run.check([rid])
    assert report.duplicates["history rows (referral/sequence)"] == [f"{rid}/1"]


def test_a_second_decision_for_the_same_attempt_is_a_double_assignment(run: Run) -> None:
    rid = run.referral()
    run.decision(rid, 1, str(uuid.uuid4()))
    report = run.check([rid])
    assert report.duplicates["routing decisions (referral/attempt)"] == [f"{rid}/1"]


def test_one_referral_event_audited_under_two_ids_is_a_duplicate(run: Run) -> None:
    rid = run.referral()
    again = str(uuid.uuid4())
    run.outbox("referrals", again, "referrals.events.v1", rid)
    run.audit(again, rid, "referrals.events.v1", SUBMITTED, 1)
    report = run.check([rid])
    assert report.duplicates["audit entries (referral/sequence)"] == [f"{rid}/1"]


def test_a_broken_chain_fails_the_check(run: Run) -> None:
    rid = run.referral()
    report = run.check([rid], ChainVerdict(False, 2, "entry 2 is missing"))
    assert report.problems() == ["the audit chain does not verify: entry 2 is missing"]


def test_other_stacks_referrals_in_shared_databases_are_out_of_scope(run: Run) -> None:
    ours = run.referral()
    foreign = str(uuid.uuid4())  # routed and audited here, but never stored by this API
    run.decision(foreign, 1, str(uuid.uuid4()))
    run.audit(str(uuid.uuid4()), foreign, "referrals.events.v1", SUBMITTED, 1)
    report = run.check([ours])
    assert report.ok, report.summary()


def test_an_organisation_given_more_than_its_daily_capacity_is_reported(run: Run) -> None:
    run.organisation("RXA01", 2)
    run.organisation("RXA02", None)  # no capacity: never over it
    rids = [run.referral() for _ in range(3)]
    for rid in rids:
        run.decision(rid, 2, str(uuid.uuid4()), org="RXA02")
    run.decision(rids[0], 3, str(uuid.uuid4()), org="RXA01")
    run.decision(rids[1], 3, str(uuid.uuid4()), org="RXA01", released=True)  # rejected it
    run.decision(rids[2], 3, str(uuid.uuid4()), org="RXA01")
    assert run.check(rids).over_capacity == [], "two held, one released: within capacity 2"

    late = run.referral()
    # 23:30 UTC on 23 November is still the 23rd in London (GMT): the same day.
    run.decision(late, 2, str(uuid.uuid4()), org="RXA01", at=NOW.replace(hour=23, minute=30))
    report = run.check([*rids, late])
    assert report.over_capacity == ["RXA01 on 2026-11-23: 3 given, capacity 2"]
    assert "over capacity: RXA01 on 2026-11-23: 3 given, capacity 2" in report.problems()

    run.sql("routing", "INSERT INTO organisation_load VALUES ('RXA01', '2026-11-24', 5)", {})
    assert "RXA01 on 2026-11-24: 5 counted, capacity 2" in run.check(rids).over_capacity


def test_a_referrals_events_in_another_order_than_committed_are_out_of_order() -> None:
    committed = {"r1": ["a", "b", "c"], "r2": ["d", "e"], "r3": ["f", "g"]}
    seen = {
        "r1": ["a", "b", "a", "b", "c"],  # republished after a relay died: still in order
        "r2": ["e", "d"],
        "r3": ["f"],  # g missing: the missing check's business
    }
    assert out_of_order(committed, seen) == ["r2"]


# ---- deliveries (the notify database) -------------------------------------------------------


class NotifyRun(Run):
    """A run whose referrals' events also reached notify, numbered for one subscription."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        from notify.adapters.migrate import MIGRATIONS as NOTIFY

        self.urls = Databases(
            self.urls.referrals,
            self.urls.routing,
            self.urls.audit,
            notify=f"sqlite:///{tmp_path / 'notify.db'}",
        )
        NOTIFY.upgrade_database(self.urls.notify)
        self.sql(
            "notify",
            "INSERT INTO notify_subscription (id, organisation, channel, topic, status, endpoint, "
            "content, filters, headers, timeout_seconds, max_count, secret, events_since_start, "
            "delivered_through, failures, handshake_due, version, created_at, updated_at) VALUES "
            "('sub', 'B81001', 'webhook', 'referrals-sent', 'active', 'https://x.example/h', "
            "'id-only', '{}', '[]', 10, 1, 'whsec_x', 0, 0, 0, 0, 1, :now, :now)",
            {"now": NOW},
        )
        self.numbered = 0

    def ingested(self, event_id: str, rid: str, placement: str = "apply") -> None:
        self.sql(
            "notify",
            "INSERT INTO notify_event (event_id, type, kind, referral_id, source, time, data, "
            "placement, received_at) VALUES (:e, 'x', 'x', :r, 's', :now, '{}', :p, :now)",
            {"e": event_id, "r": rid, "now": NOW, "p": placement},
        )

    def notified(self, event_id: str, number: int | None = None) -> None:
        self.numbered += 1
        self.sql(
            "notify",
            "INSERT INTO notify_notification (subscription_id, event_number, id, event_id, "
            "created_at) VALUES ('sub', :n, :id, :e, :now)",
            {"n": number or self.numbered, "id": str(uuid.uuid4()), "e": event_id, "now": NOW},
        )
        self.sql(
            "notify",
            "UPDATE notify_subscription SET events_since_start = :n, delivered_through = :n",
            {"n": self.numbered},
        )

    def journey(self) -> str:
        rid = self.referral()
        engine = make_engine(self.urls.referrals)
        with engine.connect() as conn:
            events = [row[0] for row in conn.execute(text("SELECT event_id FROM outbox"))]
        engine.dispose()
        engine = make_engine(self.urls.routing)
        with engine.connect() as conn:
            events += [row[0] for row in conn.execute(text("SELECT event_id FROM outbox"))]
        engine.dispose()
        for event_id in events:
            self.ingested(event_id, rid)
            self.notified(event_id)
        return rid


def test_deliveries_are_conserved_when_every_event_was_numbered_and_acknowledged(
    tmp_path: Path,
) -> None:
    run = NotifyRun(tmp_path)
    rid = run.journey()
    report = run.check([rid])
    assert report.ok, report.summary()
    assert report.deliveries == {
        "subscriptions": 1,
        "numbered": 2,
        "acknowledged": 2,
        "kept in error": 0,
    }


def test_unacknowledged_gapped_or_held_deliveries_are_reported(tmp_path: Path) -> None:
    run = NotifyRun(tmp_path)
    rid = run.journey()
    run.sql("notify", "UPDATE notify_subscription SET delivered_through = 1", {})
    run.sql("notify", "DELETE FROM notify_notification WHERE event_number = 1", {})
    run.ingested("held-event", rid, placement="held")
    report = run.check([rid])
    assert report.pending["notify deliveries"] == 1
    assert report.missing["notification numbers (gapless)"] == ["sub"]
    assert report.missing["notify held back"] == ["held-event"]
    run.sql("notify", "DELETE FROM notify_notification", {})
    run.sql("notify", "DELETE FROM notify_event WHERE placement = 'apply'", {})
    assert len(run.check([rid]).missing["notify events"]) == 2
