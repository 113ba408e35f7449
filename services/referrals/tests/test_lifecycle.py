"""Every transition × every kind of caller × every status, against a table written out by hand
from the design (not derived from the code's own rules, so a wrong rule cannot agree with
itself)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

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
    OUTCOMES,
    CancellationReason,
    CohortFlags,
    FailureReason,
    NhsNumberVerification,
    Outcome,
    Priority,
    ProgressCode,
    ProviderType,
    ReferralAccepted,
    ReferralAmended,
    ReferralCancelled,
    ReferralCompleted,
    ReferralFailed,
    ReferralInfoProvided,
    ReferralInfoRequested,
    ReferralMessageAdded,
    ReferralNhsNumberRecorded,
    ReferralProgressReported,
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
    ("submitted", "referrer"): {"amend", "cancel", "message", "record-nhs-number"},
    ("routed", "referrer"): {"amend", "cancel", "message", "record-nhs-number"},
    ("info_requested", "referrer"): {
        "amend",
        "cancel",
        "message",
        "provide-info",
        "record-nhs-number",
    },
    ("accepted", "referrer"): {"cancel", "message", "record-nhs-number"},
    ("in_progress", "referrer"): {"cancel", "message", "record-nhs-number"},
    ("unroutable", "referrer"): {"cancel", "message", "record-nhs-number"},
    ("routed", "assigned"): {
        "accept",
        "reject",
        "redirect",
        "request-info",
        "message",
        "record-nhs-number",
    },
    ("info_requested", "assigned"): {"reject", "redirect", "message", "record-nhs-number"},
    ("accepted", "assigned"): {"start", "report-progress", "fail", "message", "record-nhs-number"},
    ("in_progress", "assigned"): {
        "complete",
        "report-progress",
        "fail",
        "message",
        "record-nhs-number",
    },
    ("submitted", "ops"): {"reroute"},
    ("routed", "ops"): {"reroute"},
    ("info_requested", "ops"): {"reroute"},
    ("unroutable", "ops"): {"reroute"},
}
# Ends: completed, cancelled, failed — nobody acts on them.
OWNER = {
    "amend": "referrer",
    "cancel": "referrer",
    "accept": "assigned",
    "reject": "assigned",
    "redirect": "assigned",
    "start": "assigned",
    "complete": "assigned",
    "reroute": "ops",
    "record-nhs-number": "referrer or assigned",
    "request-info": "assigned",
    "provide-info": "referrer",
    "message": "referrer or assigned",
    "report-progress": "assigned",
    "fail": "assigned",
}
# The assigned organisation holds the referral from routing until it ends (a question keeps
# it with that organisation).
HELD = {"routed", "info_requested", "accepted", "in_progress", "completed", "failed"}
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
    "record-nhs-number": {
        "nhs_number": "4010232137",
        "verification": NhsNumberVerification.VERIFIED,
    },
    "request-info": {"question": "Is there a key safe?"},
    "provide-info": {"answer": "Yes, code 4512", "attachment_id": None},
    "message": {"text": "Daughter at home from 14:00", "attachment_id": None},
    "report-progress": {"code": ProgressCode.VISIT_BOOKED, "text": "15:30 today"},
    "fail": {"reason": FailureReason.FAILED_CONTACT, "text": None},
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
    "record-nhs-number": ReferralNhsNumberRecorded,
    "request-info": ReferralInfoRequested,
    "provide-info": ReferralInfoProvided,
    "message": ReferralMessageAdded,
    "report-progress": ReferralProgressReported,
    "fail": ReferralFailed,
}
NEXT = {
    "cancel": "cancelled",
    "accept": "accepted",
    "reject": "submitted",
    "redirect": "submitted",
    "start": "in_progress",
    "complete": "completed",
    "reroute": "submitted",
    "request-info": "info_requested",
    "provide-info": "routed",
    "fail": "failed",
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
    perform = getattr(referral, action.replace("-", "_"))
    expected_ok = action in ALLOWED.get((status, who), set())
    assert (action in referral.allowed_actions(caller)) == expected_ok
    if expected_ok:
        perform(caller, 4, NOW, **ARGS[action])
        [step] = referral.pending
        assert isinstance(step.event, EVENTS[action])
        assert (referral.version, step.sequence, step.event.version) == (5, 5, 5)
        assert step.event.sequence == 5
        back_to_routing = NEXT.get(action) == "submitted"
        assert referral.sequence == (6 if back_to_routing else 5), "6 is routing's decision's"
        assert referral.status.value == NEXT.get(action, status)
        assert step.event.status == referral.status
        assert step.event.actor.organisation == caller.organisation
        return
    if not visible(status, who):
        expected_error: type[Exception] = ReferralNotFound
    elif who not in OWNER[action].split(" or "):
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


# ---- closing the loop ---------------------------------------------------------------------


def test_an_answer_puts_the_referral_back_with_the_same_organisation() -> None:
    referral = referral_in("routed")
    referral.request_info(CALLERS["assigned"], 4, NOW, "Is there a key safe?")
    assert (referral.status, referral.assigned_org) == (ReferralStatus.INFO_REQUESTED, ASSIGNED)
    assert referral.allowed_actions(CALLERS["assigned"]) == [
        "reject",
        "redirect",
        "message",
        "record-nhs-number",
    ]
    referral.provide_info(CALLERS["referrer"], 5, NOW, "Yes, code 4512", "att-1")
    question, answer = referral.pending
    assert question.note == "Is there a key safe?" and answer.note == "Yes, code 4512"
    assert isinstance(answer.event, ReferralInfoProvided)
    assert (answer.event.assigned_org, answer.event.attachment_id) == (ASSIGNED, "att-1")
    assert answer.attachment_id == "att-1"
    assert (referral.status, referral.assigned_org) == (ReferralStatus.ROUTED, ASSIGNED)
    assert "accept" in referral.allowed_actions(CALLERS["assigned"])


def test_a_message_keeps_the_status_and_names_its_attachment_but_not_its_text() -> None:
    referral = referral_in("in_progress")
    referral.message(CALLERS["referrer"], 4, NOW, "Daughter at home from 14:00", "att-2")
    [step] = referral.pending
    assert referral.status is ReferralStatus.IN_PROGRESS and referral.version == 5
    assert (step.note, step.attachment_id, step.event.attachment_id) == (
        "Daughter at home from 14:00",
        "att-2",
        "att-2",
    )
    assert "Daughter" not in step.event.model_dump_json(), "free text stays out of events"


def test_empty_questions_answers_and_messages_are_refused_naming_the_field() -> None:
    with pytest.raises(InvalidRequest, match="question"):
        referral_in("routed").request_info(CALLERS["assigned"], 4, NOW, " ")
    with pytest.raises(InvalidRequest, match="answer"):
        referral_in("info_requested").provide_info(CALLERS["referrer"], 4, NOW, "")
    with pytest.raises(InvalidRequest, match="text"):
        referral_in("routed").message(CALLERS["assigned"], 4, NOW, "  ")


def test_cancellation_takes_a_code_text_or_both_and_other_needs_text() -> None:
    coded = referral_in("accepted")
    coded.cancel(CALLERS["referrer"], 4, NOW, None, CancellationReason.RECOVERED)
    [step] = coded.pending
    assert (step.event.reason_code, step.reason_code) == (CancellationReason.RECOVERED, "recovered")
    with pytest.raises(InvalidRequest, match="reason_text"):
        referral_in("accepted").cancel(CALLERS["referrer"], 4, NOW, None, None)
    with pytest.raises(InvalidRequest, match="reason_text"):
        referral_in("accepted").cancel(CALLERS["referrer"], 4, NOW, " ", CancellationReason.OTHER)
    words = referral_in("accepted")
    words.cancel(CALLERS["referrer"], 4, NOW, "patient admitted")
    assert words.pending[0].event.reason_code is None


def test_outcomes_follow_the_service_type_and_failure_is_its_own_end() -> None:
    ucr = referral_in("in_progress")
    with pytest.raises(InvalidRequest, match="outcome") as err:
        ucr.complete(CALLERS["assigned"], 4, NOW, Outcome.PACKAGE_OF_CARE_ARRANGED, None)
    assert err.value.field == "outcome" and "remained-at-home" in str(err.value)
    social = referral_in("in_progress")
    social.service_type = ServiceType.SOCIAL_CARE_ASSESSMENT
    social.complete(CALLERS["assigned"], 4, NOW, Outcome.PACKAGE_OF_CARE_ARRANGED, "Daily visits")
    assert social.outcome is Outcome.PACKAGE_OF_CARE_ARRANGED
    failed = referral_in("accepted")
    failed.fail(CALLERS["assigned"], 4, NOW, FailureReason.DID_NOT_ATTEND, None)
    [step] = failed.pending
    assert (failed.status, failed.outcome) == (ReferralStatus.FAILED, None)
    assert (step.event.reason_code, step.reason_code) == (
        FailureReason.DID_NOT_ATTEND,
        "did-not-attend",
    )
    assert failed.allowed_actions(CALLERS["referrer"]) == [], "failed is an end"
    with pytest.raises(InvalidRequest, match="reason_text"):
        referral_in("accepted").fail(CALLERS["assigned"], 4, NOW, FailureReason.OTHER, None)
    with pytest.raises(InvalidRequest, match="text"):
        referral_in("accepted").report_progress(
            CALLERS["assigned"], 4, NOW, ProgressCode.OTHER, None
        )


def test_the_outcome_table_in_the_api_docs_is_the_one_enforced() -> None:
    docs = (Path(__file__).parents[3] / "docs" / "api.md").read_text()
    section = docs.split("### Outcomes", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| `")]
    documented = {
        cell.strip(" `"): [code.strip(" `") for code in codes.split(",")] for cell, codes in rows
    }
    assert documented == {t.value: [o.value for o in OUTCOMES[t]] for t in ServiceType}


def test_routing_decision_takes_the_number_reserved_when_the_referral_went_to_routing() -> None:
    """Every event a subscriber sees carries a number and none is skipped: entering
    ``submitted`` at s reserves s + 1 for routing's decision, so a referrer's change made
    while routing decides comes after it."""
    referral = Referral.submit(
        referral_id="r-3",
        caller=CALLERS["referrer"],
        referrer_org=REFERRER,
        patient=Patient("BS5 0AA"),
        service_type=ServiceType.URGENT_COMMUNITY_RESPONSE,
        priority=Priority.URGENT,
        cohort=CohortFlags(),
        reason_code=None,
        reason_text=None,
        clinical_summary=None,
        now=NOW,
    )
    referral.amend(CALLERS["referrer"], 1, NOW, priority=Priority.STAT)
    referral.record_routing(ASSIGNED, ProviderType.RAPID_RESPONSE, NOW, "decision-1", 2)
    referral.reject(CALLERS["assigned"], 3, NOW, RejectionReason.FAILED_CONTACT, None)
    referral.record_unroutable(NOW, "decision-2", 5)
    referral.cancel(CALLERS["referrer"], 5, NOW, "no longer needed")
    steps = [(step.sequence, step.action) for step in referral.pending]
    assert steps == [
        (1, "submit"),
        (3, "amend"),
        (2, "route"),
        (4, "reject"),
        (5, "unroutable"),
        (6, "cancel"),
    ]
    events = [step.event.sequence for step in referral.pending if step.event is not None]
    assert events == [1, 3, 4, 6], "routing's decisions are routing's events"


def test_a_decision_from_a_routing_service_that_does_not_number_it_takes_the_next_number() -> None:
    referral = referral_in("submitted")
    referral.record_routing(ASSIGNED, ProviderType.RAPID_RESPONSE, NOW, "decision-1")
    assert [step.sequence for step in referral.pending] == [5]
    referral.accept(CALLERS["assigned"], 5, NOW)
    assert [step.sequence for step in referral.pending] == [5, 6]
