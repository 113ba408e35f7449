"""Patients with a recorded national data opt-out are left out of the evaluation figures,
whether the opt-out came with the referral or was recorded later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from audit.domain.figures import Selection, aggregate
from audit.domain.referral_facts import FigureState
from rx_contracts import (
    Actor,
    ReferralAccepted,
    ReferralAmended,
    ReferralStatus,
    SharingFlags,
    examples,
)

from .conftest import transitioned

DAY = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def fold(state: FigureState, payload: Any, at: datetime) -> None:
    state.apply(payload.EVENT_TYPE, payload.referral_id, at, payload.model_dump(mode="json"))


def submitted(state: FigureState, rid: str, opt_out: bool) -> None:
    payload = examples.referral_submitted(
        rid, submitted_at=DAY, sharing=SharingFlags(data_opt_out=opt_out)
    )
    fold(state, payload, DAY)


def accepted(state: FigureState, rid: str, opt_out: bool, minutes: int) -> None:
    payload = transitioned(
        ReferralAccepted,
        rid,
        actor=Actor(organisation="RXA01"),
        assigned_org="RXA01",
        occurred_at=DAY + timedelta(minutes=minutes),
        sharing=SharingFlags(data_opt_out=opt_out),
    )
    fold(state, payload, DAY + timedelta(minutes=minutes))


def figures(state: FigureState) -> dict[str, Any]:
    return aggregate(state, Selection(), DAY + timedelta(days=1))


def test_a_referral_of_a_patient_who_opted_out_counts_in_no_figure() -> None:
    state = FigureState()
    submitted(state, "kept", opt_out=False)
    accepted(state, "kept", opt_out=False, minutes=30)
    submitted(state, "opted-out", opt_out=True)
    accepted(state, "opted-out", opt_out=True, minutes=90)

    found = figures(state)
    assert found["daily"][0]["submitted"] == 1 and found["daily"][0]["accepted"] == 1
    [service] = found["time_to_accept"]["by_service_type"]
    assert (service["count"], service["median_seconds"]) == (1, 1800.0)
    assert found["rapid_response"]["answered_within"] == 1


def test_an_opt_out_recorded_later_takes_the_referral_out_and_a_withdrawal_puts_it_back() -> None:
    state = FigureState()
    submitted(state, "r-1", opt_out=False)
    assert figures(state)["daily"][0]["submitted"] == 1

    def amended(opt_out: bool) -> None:
        payload = transitioned(
            ReferralAmended,
            "r-1",
            status=ReferralStatus.SUBMITTED,
            changed=["patient"],
            cohort=examples.referral_submitted("r-1").cohort,
            sharing=SharingFlags(data_opt_out=opt_out),
        )
        fold(state, payload, DAY + timedelta(minutes=5))

    amended(True)
    assert figures(state)["daily"] == []
    amended(False)
    assert figures(state)["daily"][0]["submitted"] == 1
