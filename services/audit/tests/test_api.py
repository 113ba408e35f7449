"""The audit API as an ops user reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from audit.api import create_app
from audit.chain import append
from audit.config import Settings
from fastapi.testclient import TestClient
from rx_contracts import examples, wrap
from rx_messaging.records import Record
from sqlmodel import Session


def test_a_timeline_shows_events_in_the_order_they_happened_even_if_recorded_otherwise(
    tmp_path: Path,
) -> None:
    submitted_at = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    submitted = wrap(
        examples.referral_submitted("r-9"), source="/services/referrals", time=submitted_at
    )
    routed = wrap(
        examples.referral_routed("r-9"),
        source="/services/routing",
        time=submitted_at + timedelta(seconds=90),
    )
    with TestClient(
        create_app(Settings(database_url=f"sqlite:///{tmp_path / 'audit.db'}")),
        headers={"X-Organisation": "RX0PS", "X-Roles": "ops"},
    ) as client:
        with Session(client.app.state.container.engine) as s:
            # The decision topic was fetched first, as can happen after a broker restart.
            append(s, routed, Record("routing.decisions.v1", 0, 0, None, None))
            append(s, submitted, Record("referrals.events.v1", 0, 0, None, None))
            s.commit()

        entries = client.get("/audit/entries", params={"referral_id": "r-9"}).json()
        assert [e["sequence"] for e in entries] == [1, 2]
        assert entries[0]["type"] == "rx.routing.ReferralRouted.v1", "recorded first"

        steps = client.get("/audit/referrals/r-9/timeline").json()
        assert [s["type"].rsplit(".", 2)[-2] for s in steps] == [
            "ReferralSubmitted",
            "ReferralRouted",
        ]
        assert [s["elapsed_seconds"] for s in steps] == [0.0, 90.0]
        assert steps[0]["actor_org"] == "B81001" and steps[1]["actor_org"] == "RX"

        missing = client.get("/audit/referrals/nope/timeline")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"

        assert client.get("/audit/verify").json()["ok"] is True
        provider = {"X-Organisation": "B81001", "X-Roles": "provider"}
        assert client.get("/audit/entries", headers=provider).status_code == 403
