"""The referral page, the action forms and the worklist with the API answering as a stand-in:
which forms appear, what they send, how a refusal is shown, and how questions, answers,
messages and updates read."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from portal.adapters.referrals_api import ApiError
from portal.adapters.sessions import Session, User
from portal.config import Settings
from portal.entrypoints.app import create_app
from portal.entrypoints.web import current_session, referrals_api
from rx_web.settings import Environment

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
CSRF = "the-session-csrf-token"


def referral(**changes: Any) -> dict[str, Any]:
    return {
        "id": "ref-1",
        "status": "routed",
        "version": 3,
        "referrer_org": "B81001",
        "practitioner": "G1234567",
        "patient": {"postcode": "BS5 0AA", "name": "Alex Smith", "nhs_number": None},
        "service_type": "social-care-assessment",
        "priority": "urgent",
        "cohort": {"frailty": True},
        "reason": None,
        "clinical_summary": None,
        "consent": {
            "basis": "best-interests",
            "recorded_by_org": "B81001",
            "recorded_by_practitioner": "G1234567",
            "recorded_at": NOW.isoformat(),
        },
        "assigned_org": "SCC01",
        "assigned_provider_type": "social-care",
        "outcome": None,
        "created_at": NOW.isoformat(),
        "due_at": (NOW + timedelta(hours=24)).isoformat(),
        "allowed_actions": [],
        **changes,
    }


def step(sequence: int, action: str, to: str, org: str, **extra: Any) -> dict[str, Any]:
    return {
        "sequence": sequence,
        "action": action,
        "to_status": to,
        "actor_org": org,
        "actor_practitioner": extra.pop("practitioner", None),
        "reason_code": None,
        "note": None,
        "attachment_id": None,
        "at": (NOW + timedelta(minutes=sequence)).isoformat(),
        "event_id": f"e{sequence}",
        **extra,
    }


class FakeApi:
    """The referrals API as one person sees it; refusals are queued per action."""

    def __init__(self) -> None:
        self.current = referral()
        self.steps: list[dict[str, Any]] = []
        self.files: list[dict[str, Any]] = []
        self.sent: list[tuple[str, int, dict[str, Any] | None, str]] = []
        self.uploads: list[tuple[str, bytes, str]] = []
        self.refusals: dict[str, ApiError] = {}
        self.rows: list[dict[str, Any]] = []
        self.asked: list[list[tuple[str, str]]] = []

    async def referral(self, referral_id: str) -> dict[str, Any]:
        return self.current

    async def history(self, referral_id: str) -> list[dict[str, Any]]:
        return self.steps

    async def attachments(self, referral_id: str) -> list[dict[str, Any]]:
        return self.files

    async def worklist(self, params: list[tuple[str, str]]) -> dict[str, Any]:
        self.asked.append(params)
        return {"items": self.rows, "next_cursor": None}

    async def act(
        self, referral_id: str, action: str, version: int, body: dict[str, Any] | None, key: str
    ) -> dict[str, Any]:
        self.sent.append((action, version, body, key))
        if action in self.refusals:
            raise self.refusals.pop(action)
        return self.current

    async def upload(
        self, referral_id: str, filename: str, content_type: str, content: bytes, key: str
    ) -> dict[str, Any]:
        self.uploads.append((filename, content, key))
        attached = {
            "id": f"att-{len(self.files) + 1}",
            "filename": filename,
            "size": len(content),
            "uploaded_by": "B81001",
            "created_at": NOW.isoformat(),
        }
        self.files.append(attached)
        return attached


def signed_in(organisation: str, *roles: str) -> Session:
    return Session(
        id="s1",
        user=User(f"{organisation.lower()}.x", "A Person", organisation, "P1", tuple(roles)),
        access_token="t",
        id_token="i",
        csrf_token=CSRF,
        created_at=NOW,
        last_seen_at=NOW,
        expires_at=NOW + timedelta(hours=1),
    )


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def as_person(tmp_path: Path, api: FakeApi) -> Iterator[Any]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'portal.db'}",
        issuer_url="http://127.0.0.1:8000",
        rx_env=Environment.DEVELOPMENT,
    )
    app = create_app(settings)
    app.dependency_overrides[referrals_api] = lambda: api
    with TestClient(app, follow_redirects=False) as client:

        def sign_in(organisation: str, *roles: str) -> TestClient:
            session = signed_in(organisation, *roles)
            app.dependency_overrides[current_session] = lambda: session
            return client

        yield sign_in


def offered(page: str) -> list[str]:
    return re.findall(
        r'data-action="([a-z-]+)"', page.split('id="actions"')[1].split("</section>")[0]
    )


def test_the_new_actions_are_offered_only_when_the_api_lists_them(
    as_person: Any, api: FakeApi
) -> None:
    clinician = as_person("SCC01", "clinician")
    api.current = referral(allowed_actions=["accept", "reject", "request-info", "message"])
    assert offered(clinician.get("/referrals/ref-1").text) == [
        "accept",
        "reject",
        "request-info",
        "message",
    ]
    api.current = referral(
        status="in_progress", allowed_actions=["complete", "message", "report-progress", "fail"]
    )
    page = clinician.get("/referrals/ref-1").text
    assert offered(page) == ["complete", "message", "report-progress", "fail"]
    assert clinician.get("/referrals/ref-1/act/provide-info").status_code == 303, "not listed"

    referrer = as_person("B81001", "referrer")
    api.current = referral(
        status="info_requested",
        allowed_actions=["amend", "cancel", "provide-info", "message", "record-nhs-number"],
    )
    assert offered(referrer.get("/referrals/ref-1").text) == [
        "amend",
        "cancel",
        "provide-info",
        "message",
        "record-nhs-number",
    ]


def test_the_outcomes_offered_are_those_of_the_referrals_service_type(
    as_person: Any, api: FakeApi
) -> None:
    clinician = as_person("SCC01", "clinician")
    api.current = referral(status="in_progress", allowed_actions=["complete"])
    form = clinician.get("/referrals/ref-1/act/complete").text
    assert "Package of care arranged" in form and "No eligible needs" in form
    assert "Remained at home" not in form, "an urgent community response outcome"
    api.current = referral(
        status="in_progress",
        service_type="urgent-community-response",
        allowed_actions=["complete"],
    )
    form = clinician.get("/referrals/ref-1/act/complete").text
    assert "Remained at home" in form and "Package of care arranged" not in form


def test_a_refusal_is_shown_next_to_the_field_it_names_with_what_was_typed(
    as_person: Any, api: FakeApi
) -> None:
    clinician = as_person("SCC01", "clinician")
    api.current = referral(allowed_actions=["reject"])
    api.refusals["reject"] = ApiError(
        422,
        "Invalid request",
        "reason_text is required when the code is 'other'",
        [{"field": "reason_text", "rule": "required_for_other", "message": "is required"}],
    )
    answer = clinician.post(
        "/referrals/ref-1/act/reject",
        data={"csrf_token": CSRF, "version": "3", "reason_code": "other", "idempotency_key": "k"},
    )
    assert answer.status_code == 422
    assert re.search(r'id="reason_text-error"[^>]*>.*is required', answer.text)
    assert re.search(r'value="other" checked', answer.text), "the chosen reason is kept"
    assert api.sent == [("reject", 3, {"reason_code": "other"}, "k")]


def test_a_form_without_its_csrf_token_changes_nothing(as_person: Any, api: FakeApi) -> None:
    clinician = as_person("SCC01", "clinician")
    api.current = referral(allowed_actions=["request-info"])
    answer = clinician.post(
        "/referrals/ref-1/act/request-info", data={"version": "3", "question": "Key safe?"}
    )
    assert answer.status_code == 403 and api.sent == []


def test_an_answer_goes_with_a_new_document_attached_first(as_person: Any, api: FakeApi) -> None:
    referrer = as_person("B81001", "referrer")
    api.current = referral(status="info_requested", allowed_actions=["provide-info"])
    api.steps = [
        step(1, "submit", "submitted", "B81001"),
        step(2, "request-info", "info_requested", "SCC01", note="Is there a key safe?"),
    ]
    form = referrer.get("/referrals/ref-1/act/provide-info").text
    assert "Is there a key safe?" in form, "the question is shown with the answer form"
    assert 'enctype="multipart/form-data"' in form
    answer = referrer.post(
        "/referrals/ref-1/act/provide-info",
        data={
            "csrf_token": CSRF,
            "version": "3",
            "answer": "Yes, code 4512",
            "idempotency_key": "k",
        },
        files={"document": ("plan.txt", b"Care plan", "text/plain")},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/referrals/ref-1?done=provide-info"
    assert api.uploads == [("plan.txt", b"Care plan", "k-document")]
    assert api.sent == [
        ("provide-info", 3, {"answer": "Yes, code 4512", "attachment_id": "att-1"}, "k")
    ]


def test_a_refused_message_keeps_its_uploaded_document_chosen(as_person: Any, api: FakeApi) -> None:
    referrer = as_person("B81001", "referrer")
    api.current = referral(allowed_actions=["message"])
    api.refusals["message"] = ApiError(
        422, "Invalid request", "", [{"field": "text", "message": "text: Field required"}]
    )
    answer = referrer.post(
        "/referrals/ref-1/act/message",
        data={"csrf_token": CSRF, "version": "3", "idempotency_key": "k"},
        files={"document": ("photo.png", b"\x89PNG", "image/png")},
    )
    assert answer.status_code == 422
    assert re.search(r'id="text-error"[^>]*>.*Field required', answer.text)
    assert re.search(r'<option value="att-1" selected>photo.png</option>', answer.text)


def test_a_refused_document_is_named_at_the_file_field(as_person: Any, api: FakeApi) -> None:
    referrer = as_person("B81001", "referrer")
    api.current = referral(allowed_actions=["message"])

    async def refuse(*_: Any) -> dict[str, Any]:
        raise ApiError(415, "Unsupported Media Type", "PDF, PNG, JPEG or plain text only")

    api.upload = refuse  # type: ignore[method-assign]
    answer = referrer.post(
        "/referrals/ref-1/act/message",
        data={"csrf_token": CSRF, "version": "3", "text": "See attached"},
        files={"document": ("run.exe", b"MZ", "application/octet-stream")},
    )
    assert answer.status_code == 415
    assert re.search(r'id="document-error"[^>]*>.*PDF, PNG, JPEG', answer.text)
    assert "See attached" in answer.text and api.sent == []


def test_the_timeline_shows_questions_answers_messages_and_updates_with_who_and_when(
    as_person: Any, api: FakeApi
) -> None:
    clinician = as_person("SCC01", "clinician")
    api.current = referral(status="in_progress")
    api.files = [
        {
            "id": "att-1",
            "filename": "plan.txt",
            "size": 9,
            "uploaded_by": "B81001",
            "created_at": NOW.isoformat(),
        }
    ]
    api.steps = [
        step(1, "submit", "submitted", "B81001"),
        step(2, "request-info", "info_requested", "SCC01", note="Key safe?", practitioner="SW1"),
        step(3, "provide-info", "routed", "B81001", note="Code 4512", attachment_id="att-1"),
        step(4, "accept", "accepted", "SCC01"),
        step(5, "message", "accepted", "B81001", note="Daughter there from 14:00"),
        step(6, "report-progress", "in_progress", "SCC01", reason_code="visit-booked"),
    ]
    page = clinician.get("/referrals/ref-1").text
    timeline = page.split('id="timeline"')[1].split("</ol>")[0]
    items = re.findall(r'data-action="([a-z-]+)"', timeline)
    assert items == ["request-info", "provide-info", "message", "report-progress"]
    assert "Question" in timeline and "from SCC01 (SW1), 3 Dec 2026, 09:02" in timeline
    assert "Code 4512" in timeline and 'href="/referrals/ref-1/attachments/att-1"' in timeline
    assert "Update: Visit booked" in timeline
    assert (
        "best interests (they lack capacity), recorded by B81001"
        in page.split('id="consent"')[1].split("</dd>")[0]
    )


def test_a_waiting_question_is_marked_for_the_referrer(as_person: Any, api: FakeApi) -> None:
    referrer = as_person("B81001", "referrer")
    api.rows = [
        {**referral(status="info_requested"), "postcode_district": "BS5", "reason_code": None},
        {**referral(id="ref-2"), "postcode_district": "BS5", "reason_code": None},
    ]
    rows = referrer.get("/worklist?view=sent").text
    marked = re.findall(
        r'data-referral="(ref-\d)"[^>]*>(?:(?!</tr>).)*data-question-waiting', rows, re.S
    )
    assert marked == ["ref-1"]
    api.current = referral(status="info_requested", allowed_actions=["provide-info"])
    api.steps = [step(2, "request-info", "info_requested", "SCC01", note="Key safe?")]
    page = referrer.get("/referrals/ref-1").text
    waiting = page.split('id="question-waiting"')[1].split("</div>")[0]
    assert "waiting for your answer" in waiting and "Key safe?" in waiting


def test_the_worklist_and_its_polled_table_ask_for_the_same_filters(
    as_person: Any, api: FakeApi
) -> None:
    """Known filter values are passed on, unknown ones and an unknown view dropped, alike for
    the page and the table it polls (which links the same query)."""
    clinician = as_person("SCC01", "clinician")
    query = "view=elsewhere&status=accepted&priority=whenever&service_type=gp-review"
    page = clinician.get(f"/worklist?{query}")
    rows = clinician.get(f"/worklist/rows?{query}", headers={"HX-Request": "true"})
    assert page.status_code == rows.status_code == 200
    wanted = [
        ("view", "assigned"),
        ("status", "accepted"),
        ("service_type", "gp-review"),
        ("limit", "100"),
    ]
    assert api.asked == [wanted, wanted]
    assert clinician.get("/worklist/rows").status_code == 200
    assert api.asked[-1] == [("view", "assigned"), ("limit", "100")]
