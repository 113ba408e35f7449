"""Which actions a person is offered, and what each form sends to the API."""

from __future__ import annotations

from portal.actions import ACTIONS, offered


def names(allowed: list[str], roles: list[str]) -> list[str]:
    return [form.name for form in offered(allowed, roles)]


def test_only_what_the_api_allows_and_the_job_role_covers_is_offered() -> None:
    allowed = ["accept", "reject", "redirect"]
    assert names(allowed, ["clinician"]) == ["accept", "reject", "redirect"]
    assert names(allowed, ["referrer"]) == []
    assert names(["amend", "cancel"], ["referrer"]) == ["amend", "cancel"]
    assert names(["amend", "cancel"], ["clinician"]) == []


def test_a_team_lead_may_take_every_action_the_api_allows() -> None:
    assert names(["amend", "cancel"], ["team-lead"]) == ["amend", "cancel"]
    assert names(["start"], ["team-lead"]) == ["start"]
    assert names([], ["team-lead"]) == []


def test_an_action_the_portal_has_no_form_for_yet_is_not_offered() -> None:
    assert names(["escalate", "accept"], ["team-lead"]) == ["accept"]
    assert names(["reroute"], ["team-lead"]) == [], "an ops action"


def test_questions_and_answers_go_to_the_side_that_takes_them() -> None:
    assigned = ["accept", "reject", "redirect", "request-info", "message"]
    assert names(assigned, ["clinician"]) == assigned
    assert names(assigned, ["referrer"]) == ["message"]
    referrer = ["amend", "cancel", "provide-info", "message", "record-nhs-number"]
    assert names(referrer, ["referrer"]) == referrer
    assert names(referrer, ["clinician"]) == ["message"]
    working = ["complete", "message", "report-progress", "fail"]
    assert names(working, ["clinician"]) == working


def test_forms_send_the_fields_filled_in_and_leave_judging_to_the_api() -> None:
    reject = ACTIONS["reject"].body(
        {"reason_code": "other", "reason_text": "  ", "csrf_token": "x"}
    )
    assert reject == {"reason_code": "other"}
    complete = ACTIONS["complete"].body({"outcome": "remained-at-home", "summary": "Well"})
    assert complete == {"outcome": "remained-at-home", "summary": "Well"}
    assert ACTIONS["accept"].body({"csrf_token": "x"}) is None
    amend = ACTIONS["amend"].body({"priority": "asap", "clinical_summary": ""})
    assert amend == {"priority": "asap", "clinical_summary": None}


def test_the_new_forms_send_the_apis_fields() -> None:
    assert ACTIONS["request-info"].body({"question": " Key safe? "}) == {"question": "Key safe?"}
    assert ACTIONS["provide-info"].body({"answer": "4512", "attachment_id": ""}) == {
        "answer": "4512"
    }
    assert ACTIONS["message"].body({"text": "Hi", "attachment_id": "a1"}) == {
        "text": "Hi",
        "attachment_id": "a1",
    }
    assert ACTIONS["report-progress"].body({"progress_code": "visit-booked", "text": ""}) == {
        "progress_code": "visit-booked"
    }
    assert ACTIONS["fail"].body({"reason_code": "did-not-attend"}) == {
        "reason_code": "did-not-attend"
    }
    assert ACTIONS["cancel"].body({"reason_code": "recovered", "reason_text": ""}) == {
        "reason_code": "recovered"
    }
    assert ACTIONS["record-nhs-number"].body(
        {"nhs_number": "9434765919", "verification": "verified"}
    ) == {"nhs_number": "9434765919", "verification": "verified"}


def test_every_coded_answer_offered_is_one_the_api_takes() -> None:
    from portal.actions import CHOICES, choices_for
    from rx_contracts import (
        OUTCOMES,
        CancellationReason,
        FailureReason,
        ProgressCode,
        RejectionReason,
    )

    for name, vocabulary in (
        ("rejection", RejectionReason),
        ("cancellation", CancellationReason),
        ("failure", FailureReason),
        ("progress", ProgressCode),
    ):
        codes = [code for code, _ in CHOICES[name]]
        assert set(codes) <= {c.value for c in vocabulary} and "other" in codes, name
    for service_type, outcomes in OUTCOMES.items():
        offered_outcomes = [c for c, _ in choices_for({"service_type": service_type})["outcome"]]
        assert offered_outcomes == [o.value for o in outcomes]
