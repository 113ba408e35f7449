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
    assert names(["request_info", "accept"], ["team-lead"]) == ["accept"]


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
