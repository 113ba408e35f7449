"""Every transition × every kind of caller × every status, against a table written out by hand
from the design (not derived from the code's own rules, so a wrong rule cannot agree with
itself)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from referrals.domain.caller import Caller, Role
from referrals.domain.errors import (
    IllegalTransition,
    InvalidRequest,
    NotPermitted,
    ReferralNotFound,
    StaleVersion,
)
from referrals.domain.model import Patient, Referral
from referrals.domain.sharing import Consent
from rx_contracts import (
    CohortFlags,
    NhsNumberVerification,
    Outcome,
    Priority,
    ProviderType,
    ReferralAccepted,
    ReferralAmended,
    ReferralCancelled,
    ReferralCompleted,
    ReferralNhsNumberRecorded,
    ReferralRedirected,
    ReferralRejected,
    ReferralRerouted,
    ReferralStarted,
    ReferralStatus,
    RejectionReason,
    ServiceType,
    SharingBasis,
)

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
REFERRER, ASSIGNED = "B81001", "RXA01"

CALLERS = {
    "referrer": Caller(REFERRER, frozenset({Role.PROVIDER}), "G1234567"),
    "assigned": Caller(ASSIGNED, frozenset({Role.PROVIDER}), "N7654321"),
    "other provider": Caller("L81002", frozenset({Role.PROVIDER})),
    "ops": Caller("RX0PS", frozenset({Role.OPS})),
    "admin": Caller("RX0AD", frozenset({Role.ADMIN})),
}

# Who may do what in each status, from the design's lifecycle and "who may do what".
ALLOWED: dict[tuple[str, str], set[str]] = {
    ("submitted", "referrer"): {"amend", "cancel", "record_nhs_number"},
    ("routed", "referrer"): {"amend", "cancel", "record_nhs_number"},
    ("accepted", "referrer"): {"cancel", "record_nhs_number"},
    ("in_progress", "referrer"): {"cancel", "record_nhs_number"},
    ("unroutable", "referrer"): {"cancel", "record_nhs_number"},
    ("routed", "assigned"): {"accept", "reject", "redirect"},
    ("accepted", "assigned"): {"start"},
    ("in_progress", "assigned"): {"complete"},
    ("submitted", "ops"): {"reroute"},
    ("routed", "ops"): {"reroute"},
    ("unroutable", "ops"): {"reroute"},
}
OWNER = {
    "amend": "referrer",
    "cancel": "referrer",
    "accept": "assigned",
    "reject": "assigned",
    "redirect": "assigned",
    "start": "assigned",
    "complete": "assigned",
    "reroute": "ops",
    "record_nhs_number": "referrer",
}
# The assigned organisation holds the referral only from routing until it ends.
HELD = {"routed", "accepted", "in_progress", "completed"}
ARGS = {
    "amend": {"priority": Priority.STAT},
    "cancel": {"text": "patient admitted"},
    "accept": {},
    "reject": {"reason": RejectionReason.FAILED_CONTACT, "text": None},
    "redirect": {
        "target_provider_type": ProviderType.SOCIAL_CARE,
        "target_org": None,
        "text": "needs care",
    },
    "start": {},
    "complete": {"outcome": Outcome.REMAINED_AT_HOME, "summary": None},
    "reroute": {"target_provider_type": None, "target_org": None, "text": "cover agreed"},
    "record_nhs_number": {
        "nhs_number": "4010232137",
        "verification": NhsNumberVerification.VERIFIED,
    },
}
EVENTS = {
    "amend": ReferralAmended,
    "cancel": ReferralCancelled,
    "accept": ReferralAccepted,
    "reject": ReferralRejected,
    "redirect": ReferralRedirected,
    "start": ReferralStarted,
    "complete": ReferralCompleted,
    "reroute": ReferralRerouted,
    "record_nhs_number": ReferralNhsNumberRecorded,
}
NEXT = {
    "cancel": "cancelled",
    "accept": "accepted",
    "reject": "submitted",
    "redirect": "submitted",
    "start": "in_progress",
    "complete": "completed",
    "reroute": "submitted",
}


def referral_in(status: str) -> Referral:
    r = Referral(
        id="r-1",
        referrer_org=REFERRER,
        practitioner="G1234567",
        patient=Patient("BS5 0AA", "9434765919"),
        service_type=ServiceType.URGENT_COMMUNITY_RESPONSE,
        priority=Priority.URGENT,
        cohort=CohortFlags(),
        reason_code=None,
        reason_text=None,
        clinical_summary=None,
        created_at=NOW,
        due_at=NOW,
        status=ReferralStatus(status),
        version=4,
        sequence=4,
        consent=Consent(SharingBasis.EXPLICIT_CONSENT, REFERRER, "G1234567", NOW),
    )
    if status in HELD:
        r.assigned_org, r.assigned_provider_type = ASSIGNED, ProviderType.RAPID_RESPONSE
    return r


def visible(status: str, who: str) -> bool:
    return who in {"referrer", "ops"} or (who == "assigned" and status in HELD)


CASES = [
    (status.value, action, who) for status in ReferralStatus for action in OWNER for who in CALLERS
]


@pytest.mark.parametrize(
    ("status", "action", "who"), CASES, ids=[f"{s}-{a}-{w}" for s, a, w in CASES]
)
def test_transition_matrix(status: str, action: str, who: str) -> None:
    referral = referral_in(status)
    caller = CALLERS[who]
    perform = getattr(referral, action)
    expected_ok = action in ALLOWED.get((status, who), set())
    assert (action.replace("_", "-") in referral.allowed_actions(caller)) == expected_ok
    if expected_ok:
        perform(caller, 4, NOW, **ARGS[action])
        [step] = referral.pending
        assert isinstance(step.event, EVENTS[action])
        assert (referral.version, referral.sequence, step.event.version) == (5, 5, 5)
        assert referral.status.value == NEXT.get(action, status)
        assert step.event.status == referral.status
        assert step.event.actor.organisation == caller.organisation
        return
    if not visible(status, who):
        expected_error: type[Exception] = ReferralNotFound
    elif OWNER[action] != who:
        expected_error = NotPermitted
    else:
        expected_error = IllegalTransition
    with pytest.raises(expected_error):
        perform(caller, 4, NOW, **ARGS[action])
    assert referral.pending == [] and referral.version == 4, "a refused action changes nothing"


def test_a_stale_version_is_refused_before_the_state_is_considered() -> None:
    referral = referral_in("routed")
    with pytest.raises(StaleVersion) as err:
        referral.accept(CALLERS["assigned"], 3, NOW)
    assert err.value.current == 4


def test_rejection_releases_the_referral_and_remembers_who_declined() -> None:
    referral = referral_in("routed")
    referral.reject(
        CALLERS["assigned"], 4, NOW, RejectionReason.NOT_AVAILABLE_WITHIN_TIMESCALE, None
    )
    event = referral.pending[0].event
    assert (referral.status, referral.assigned_org, referral.rejected_by) == (
        ReferralStatus.SUBMITTED,
        None,
        [ASSIGNED],
    )
    assert (event.rejected_by, event.provider_type, event.assigned_org) == (
        ASSIGNED,
        ProviderType.RAPID_RESPONSE,
        None,
    )
    assert not referral.visible_to(CALLERS["assigned"]), (
        "a declining organisation no longer sees the referral"
    )


def test_free_text_is_required_for_other_and_a_redirect_needs_a_target() -> None:
    with pytest.raises(InvalidRequest, match="reason_text"):
        referral_in("routed").reject(CALLERS["assigned"], 4, NOW, RejectionReason.OTHER, "  ")
    with pytest.raises(InvalidRequest, match="summary"):
        referral_in("in_progress").complete(CALLERS["assigned"], 4, NOW, Outcome.OTHER, None)
    with pytest.raises(InvalidRequest, match="target"):
        referral_in("routed").redirect(CALLERS["assigned"], 4, NOW, None, None, "elsewhere")


def test_amending_reports_what_changed_recomputes_due_time_and_refuses_the_postcode() -> None:
    referral = referral_in("submitted")
    changed = referral.amend(
        CALLERS["referrer"],
        4,
        NOW,
        priority=Priority.STAT,
        clinical_summary=None,
        patient={"name": "Alex Smith"},
    )
    assert changed == ["priority", "patient"]
    assert referral.due_at.hour == 10, "stat is due within an hour of submission"
    assert referral.patient.name == "Alex Smith" and referral.patient.postcode == "BS5 0AA"
    with pytest.raises(InvalidRequest, match="postcode"):
        referral.amend(CALLERS["referrer"], 5, NOW, patient={"postcode": "BS1 1AA"})
    with pytest.raises(InvalidRequest, match="changes nothing"):
        referral.amend(CALLERS["referrer"], 5, NOW, priority=Priority.STAT)


def test_only_a_provider_may_refer_and_only_for_its_own_organisation() -> None:
    def submit(caller: Caller) -> Referral:
        return Referral.submit(
            referral_id="r-2",
            caller=caller,
            referrer_org=REFERRER,
            patient=Patient("BS5 0AA"),
            service_type=ServiceType.GP_REVIEW,
            priority=Priority.ROUTINE,
            cohort=CohortFlags(),
            reason_code=None,
            reason_text=None,
            clinical_summary=None,
            now=NOW,
        )

    assert submit(CALLERS["referrer"]).status is ReferralStatus.SUBMITTED
    for who in ("other provider", "ops", "admin"):
        with pytest.raises(NotPermitted):
            submit(CALLERS[who])
