"""What-if replay over recorded referrals: proposed rules beside what happened, predicted
breaches from observed acceptance times, nothing published; as API and as command."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from routing.config import get_settings
from routing.domain.errors import InvalidInput
from routing.entrypoints import replay_cli
from routing.entrypoints.api.app import create_app
from routing.entrypoints.clock_worker import ClockWorker
from routing.service_layer import replay as replaying
from rx_contracts import ReferralAccepted, ReferralRejected, ReferralRerouted, RejectionReason
from rx_messaging.tables import OutboxMessage
from sqlmodel import Session, func, select

from .support import MONDAY_10AM, submitted, transition

OPS = {"X-Organisation": "RX0PS", "X-Roles": "ops"}
RXA02_FIRST = [
    {
        "locality": "east",
        "rules": [
            {
                "id": "ucr",
                "service_types": ["urgent-community-response"],
                "candidates": ["RXA02", "RXA01"],
            }
        ],
    }
]
WINDOW = {"from": "2026-11-23T00:00:00Z", "to": "2026-11-24T00:00:00Z"}


@pytest.fixture
def history(container, deliver, clock) -> None:
    """Monday in east: RXA01 accepts in 20 minutes, RXA02 in 50 (its limit is 30).

    r-1, r-2: RXA01 accepts. r-3: RXA01 rejects, RXA02 accepts. r-4: unknown district.
    r-5: RXA01 lets the clock run out, the platform re-routes, RXA02 accepts."""
    accepted = lambda rid, org: transition(ReferralAccepted, rid, holder=org, at=clock.now())  # noqa: E731
    for rid in ("r-1", "r-2"):
        deliver(submitted(rid, at=clock.now()))
        clock.advance(minutes=20)
        deliver(accepted(rid, "RXA01"))
    deliver(submitted("r-3", at=clock.now()))
    deliver(
        transition(
            ReferralRejected,
            "r-3",
            rejected_by="RXA01",
            reason_code=RejectionReason.FAILED_CONTACT,
            at=clock.now(),
        )
    )
    clock.advance(minutes=50)
    deliver(accepted("r-3", "RXA02"))
    deliver(submitted("r-4", at=clock.now(), postcode_district="ZZ9"))
    deliver(submitted("r-5", at=clock.now()))
    clock.advance(minutes=30)
    ClockWorker(container.uow, clock).fire_due()
    deliver(
        transition(
            ReferralRerouted, "r-5", holder=None, reason_code="acceptance-timeout", at=clock.now()
        )
    )
    clock.advance(minutes=50)
    deliver(accepted("r-5", "RXA02"))


def run(container, rule_sets, start=MONDAY_10AM, end=MONDAY_10AM + timedelta(days=1)) -> dict:
    proposed = replaying.proposal(
        [replaying.ProposedRuleSet(r["locality"], r["rules"]) for r in rule_sets], container.uow()
    )
    return replaying.replay(proposed, start, end, container.uow()).as_json()


def outbox_rows(container) -> int:
    with Session(container.engine) as session:
        return session.exec(select(func.count()).select_from(OutboxMessage)).one()


def test_putting_the_slow_team_first_predicts_breaches_and_unroutable_referrals(
    container, history
) -> None:
    before = outbox_rows(container)
    report = run(container, RXA02_FIRST)
    assert outbox_rows(container) == before, "a replay publishes nothing"
    assert report["referrals"] == 5
    orgs = {o["ods_code"]: o for o in report["organisations"]}
    assert {k: (v["actual"], v["proposed"]) for k, v in orgs.items()} == {
        "RXA01": (2, 2),
        "RXA02": (2, 0),
    }
    assert (
        orgs["RXA01"]["observed_median_acceptance_minutes"],
        orgs["RXA02"]["observed_median_acceptance_minutes"],
    ) == (20.0, 50.0)
    assert report["unroutable"]["actual_referrals"] == ["r-4"]
    assert sorted(u["referral_id"] for u in report["unroutable"]["proposed_referrals"]) == [
        "r-3",
        "r-4",
        "r-5",
    ], "r-3 and r-5: RXA02 would time out and RXA01 declined them in reality"
    breaches = report["acceptance_breaches"]
    assert breaches["actual_referrals"] == [{"referral_id": "r-5", "organisation": "RXA01"}]
    assert [(b["referral_id"], b["organisation"]) for b in breaches["predicted_referrals"]] == [
        ("r-1", "RXA02"),
        ("r-2", "RXA02"),
        ("r-3", "RXA02"),
        ("r-5", "RXA02"),
    ]
    assert breaches["predicted_referrals"][0]["limit_minutes"] == 30.0
    assert report["changed"]["count"] == 2


def test_the_window_limits_the_referrals_replayed(container, history) -> None:
    report = run(container, RXA02_FIRST, end=MONDAY_10AM + timedelta(minutes=30))
    assert report["referrals"] == 2


def test_a_bad_proposal_names_every_broken_rule(container, history) -> None:
    with pytest.raises(InvalidInput) as caught:
        run(
            container,
            [
                {"locality": "atlantis", "rules": []},
                {"locality": "east", "rules": [{"id": "x", "candidates": ["SCC02"]}]},
            ],
        )
    assert {(e.field, e.rule) for e in caught.value.errors} == {
        ("rule_sets.0.locality", "unknown_locality"),
        ("rule_sets.1.rules.0.candidates.0", "candidate_serves_locality"),
    }


def test_replay_over_http_is_for_ops_and_checks_its_window(container, history) -> None:
    with TestClient(create_app(container=container)) as client:
        body = {**WINDOW, "rule_sets": RXA02_FIRST}
        provider = {"X-Organisation": "RXA01", "X-Roles": "provider"}
        assert client.post("/replay", json=body, headers=provider).status_code == 403
        answered = client.post("/replay", json=body, headers=OPS)
        assert answered.status_code == 200, answered.text
        assert answered.json()["acceptance_breaches"]["predicted"] == 4
        naive = client.post("/replay", json={**body, "from": "2026-11-23T00:00:00"}, headers=OPS)
        assert {(e["field"], e["rule"]) for e in naive.json()["errors"]} == {
            ("from", "timezone_required")
        }
        backwards = client.post("/replay", json={**body, "to": "2026-11-22T00:00:00Z"}, headers=OPS)
        assert {(e["field"], e["rule"]) for e in backwards.json()["errors"]} == {
            ("to", "window_order")
        }


def test_the_replay_command_shows_progress_and_a_table(
    container, history, tmp_path: Path, monkeypatch, capsys
) -> None:
    rules = tmp_path / "proposal.json"
    rules.write_text(json.dumps({"rule_sets": RXA02_FIRST}))
    monkeypatch.setenv(
        "ROUTING_DATABASE_URL", container.engine.url.render_as_string(hide_password=False)
    )
    get_settings.cache_clear()
    try:
        status = replay_cli.main(
            ["--rules", str(rules), "--from", WINDOW["from"], "--to", WINDOW["to"]]
        )
    finally:
        get_settings.cache_clear()
    out, err = capsys.readouterr()
    assert status == 0
    assert "5/5" in err, "the progress bar counts referrals"
    assert "5 referrals submitted" in out
    assert any(line.split()[:4] == ["RXA02", "2", "0", "-2"] for line in out.splitlines()), out
    assert "acceptance breaches actual      1   predicted     4" in out
    rules.write_text(json.dumps({"rule_sets": [{"locality": "atlantis", "rules": []}]}))
    get_settings.cache_clear()
    try:
        assert (
            replay_cli.main(["--rules", str(rules), "--from", WINDOW["from"], "--to", WINDOW["to"]])
            == 1
        )
    finally:
        get_settings.cache_clear()
    assert "rule_sets.0.locality" in capsys.readouterr().out
