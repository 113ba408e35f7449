"""The referrals API as a provider system meets it: every operation and every error path."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from referrals.bootstrap import bootstrap
from referrals.config import Settings
from referrals.entrypoints.api.app import create_app
from rx_contracts import Envelope, ProviderType, decode
from rx_contracts.topics import REFERRAL_EVENTS
from rx_messaging.tables import OutboxMessage
from sqlmodel import Session, create_engine, select

BODY = {
    "referrer": {"organisation": "B81001", "practitioner": "G1234567"},
    "patient": {"nhs_number": "943 476 5919", "name": "Alex Smith", "postcode": "bs5 0aa"},
    "service_type": "urgent-community-response",
    "priority": "urgent",
    "cohort": {"frailty": True},
    "reason": {"code": "129839007", "text": "Fall at home"},
}
GP = {"X-Organisation": "B81001", "X-Roles": "provider", "X-Practitioner": "G1234567"}
TEAM = {"X-Organisation": "RXA01", "X-Roles": "provider"}
OPS = {"X-Organisation": "RX0PS", "X-Roles": "ops"}
STRANGER = {"X-Organisation": "L81002", "X-Roles": "provider"}


@pytest.fixture
def db_url(database_url: str) -> str:
    """A fresh database per test, on SQLite and on PostgreSQL."""
    return database_url


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        yield c


def post(
    client: TestClient,
    path: str,
    who: dict[str, str],
    body: Any = None,
    key: str | None = None,
    version: int | None = None,
    **headers: str,
) -> Response:
    h = {**who, "Idempotency-Key": key or str(uuid.uuid4()), **headers}
    if version is not None:
        h["If-Match"] = f'"{version}"'
    return client.post(path, json=body, headers=h)


def submit(client: TestClient, **changes: Any) -> dict[str, Any]:
    response = post(client, "/referrals", GP, {**BODY, **changes})
    assert response.status_code == 201, response.text
    return response.json()


def routed(client: TestClient, db_url: str) -> dict[str, Any]:
    """A referral routed to RXA01, recorded as the referrals consumer records it."""
    referral = submit(client)
    with bootstrap(Settings(database_url=db_url)).uow() as uow:
        uow.referrals.get(referral["id"]).record_routing(
            "RXA01", ProviderType.RAPID_RESPONSE, datetime.now(UTC), "ev-1"
        )
        uow.commit()
    return client.get(f"/referrals/{referral['id']}", headers=GP).json()


def events(db_url: str) -> list[Envelope]:
    return [decode(r.key, r.value, [(n, v.encode()) for n, v in r.headers]) for r in outbox(db_url)]


def outbox(db_url: str) -> list[OutboxMessage]:
    """The referral events staged so far (reads stage access events on a topic of their own:
    test_access_audit.py)."""
    engine = create_engine(db_url)
    try:
        with Session(engine) as s:
            query = select(OutboxMessage).where(OutboxMessage.topic == REFERRAL_EVENTS)
            return list(s.exec(query.order_by(OutboxMessage.id)))
    finally:
        engine.dispose()


def problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"]
    return body


# ---- submitting ----------------------------------------------------------------------------


def test_a_submitted_referral_is_stored_with_its_event_in_the_outbox(
    client: TestClient, db_url: str
) -> None:
    response = post(client, "/referrals", GP, BODY)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "submitted" and body["version"] == 1
    assert (
        body["patient"]["postcode"] == "BS5 0AA" and body["patient"]["nhs_number"] == "9434765919"
    )
    assert body["allowed_actions"] == ["amend", "cancel", "message", "record-nhs-number"]
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"].endswith(f"/referrals/{body['id']}")

    [row] = outbox(db_url)
    assert row.topic == "referrals.events.v1"
    event = decode(row.key, row.value, [(n, v.encode()) for n, v in row.headers])
    assert event.subject == body["id"]
    assert event.payload().postcode_district == "BS5" and event.payload().cohort.frailty is True
    assert "9434765919" not in row.value.decode() and "Alex" not in row.value.decode()
    assert client.get(f"/referrals/{body['id']}", headers=GP).json() == body


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        (
            {"patient": {**BODY["patient"], "nhs_number": "9434765918"}},
            "patient.nhs_number",
            "nhs_number_check_digit",
        ),
        (
            {"patient": {**BODY["patient"], "postcode": "nowhere"}},
            "patient.postcode",
            "postcode_format",
        ),
        ({"referrer": {"organisation": "B8-1"}}, "referrer.organisation", "ods_code"),
        ({"priority": "whenever"}, "priority", "enum"),
        ({"surprise": 1}, "surprise", "extra_forbidden"),
        ({"reason": {"code": "abc"}}, "reason.code", "string_pattern_mismatch"),
        (
            {"patient": {"postcode": "BS5 0AA", "birth_date": "7/3/41"}},
            "patient.birth_date",
            "string_pattern_mismatch",
        ),
    ],
)
def test_bad_input_gets_a_problem_naming_field_and_rule_and_nothing_is_stored(
    client: TestClient, db_url: str, change: dict, field: str, rule: str
) -> None:
    body = problem(post(client, "/referrals", GP, {**BODY, **change}), 422)
    assert {"field": field, "rule": rule} in [
        {k: e[k] for k in ("field", "rule")} for e in body["errors"]
    ]
    assert field in body["detail"]
    assert outbox(db_url) == []
    assert client.get("/referrals?view=sent", headers=GP).json()["items"] == []


def test_malformed_json_is_a_problem_too(client: TestClient) -> None:
    response = client.post(
        "/referrals",
        content=b"{not json",
        headers={**GP, "Idempotency-Key": "k", "content-type": "application/json"},
    )
    assert problem(response, 422)["title"] == "Invalid request"


def test_a_body_over_the_size_limit_is_refused_before_it_is_read(
    client: TestClient, db_url: str
) -> None:
    response = client.post(
        "/referrals",
        content=b"x" * 2_000_000,
        headers={**GP, "Idempotency-Key": "k", "content-type": "application/json"},
    )
    assert "limit" in problem(response, 413)["detail"]
    assert outbox(db_url) == []


def test_a_provider_may_only_refer_for_its_own_organisation(client: TestClient) -> None:
    assert "on behalf of" in problem(post(client, "/referrals", STRANGER, BODY), 403)["detail"]
    problem(post(client, "/referrals", OPS, BODY), 403)


# ---- identity ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Organisation": "not an ods code"},
        {"X-Organisation": "B81001", "X-Roles": "superuser"},
    ],
)
def test_a_caller_without_a_valid_identity_is_401(
    client: TestClient, headers: dict[str, str]
) -> None:
    problem(client.post("/referrals", json=BODY, headers={**headers, "Idempotency-Key": "k"}), 401)
    problem(client.get("/referrals", headers=headers), 401)


# ---- idempotency ---------------------------------------------------------------------------


def test_a_retry_with_the_same_key_and_body_gets_the_original_response(
    client: TestClient, db_url: str
) -> None:
    first = post(client, "/referrals", GP, BODY, key="retry-1")
    again = post(client, "/referrals", GP, BODY, key="retry-1")
    assert again.status_code == 201 and again.json() == first.json()
    assert (
        again.headers["etag"] == first.headers["etag"]
        and again.headers["idempotent-replayed"] == "true"
    )
    assert len(outbox(db_url)) == 1, "one referral, one event"


def test_text_beyond_ascii_reads_back_the_same_as_written_and_as_replayed(
    client: TestClient,
) -> None:
    """Answers are UTF-8 JSON; a retry is answered from the stored response (a JSON column)
    and a read from the referral row: each carries the text exactly as the caller sent it."""
    text = 'Zoë O’Brien — fell at 3 °C, "dizzy"; 日本語 \\ \u2028 end'
    body = {**BODY, "clinical_summary": text, "patient": {**BODY["patient"], "name": "Zoë Ó"}}
    first = post(client, "/referrals", GP, body, key="utf-8")
    again = post(client, "/referrals", GP, body, key="utf-8")
    read = client.get(f"/referrals/{first.json()['id']}", headers=GP)
    for answer in (first, again, read):
        assert answer.headers["content-type"] == "application/json"
        assert json.loads(answer.content.decode("utf-8"))["clinical_summary"] == text
        assert "Zoë Ó".encode() in answer.content, "UTF-8, not \\u escapes"
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert read.json() == first.json()


def test_the_same_key_with_another_body_is_refused(client: TestClient, db_url: str) -> None:
    post(client, "/referrals", GP, BODY, key="retry-2")
    body = problem(post(client, "/referrals", GP, {**BODY, "priority": "stat"}, key="retry-2"), 422)
    assert body["title"] == "Idempotency-Key reused"
    assert len(outbox(db_url)) == 1


def test_keys_belong_to_an_organisation(client: TestClient, db_url: str) -> None:
    post(client, "/referrals", GP, BODY, key="shared")
    other_gp = {"X-Organisation": "L81002", "X-Roles": "provider"}
    body = {**BODY, "referrer": {"organisation": "L81002"}}
    assert post(client, "/referrals", other_gp, body, key="shared").status_code == 201
    assert len(outbox(db_url)) == 2


@pytest.mark.parametrize(
    ("key", "status", "title"),
    [
        (None, 400, "Idempotency-Key required"),
        ("k" * 256, 422, "Invalid request"),
        ("tab\there", 422, "Invalid request"),
    ],
)
def test_every_post_needs_a_usable_idempotency_key(
    client: TestClient, key: str | None, status: int, title: str
) -> None:
    headers = {**GP, **({"Idempotency-Key": key} if key else {})}
    answer = problem(client.post("/referrals", json=BODY, headers=headers), status)
    assert answer["title"] == title
    if status == 422:
        assert answer["errors"][0]["field"] == "header.idempotency-key"


def test_a_retried_transition_is_applied_once(client: TestClient, db_url: str) -> None:
    referral = submit(client)
    path = f"/referrals/{referral['id']}/cancel"
    first = post(client, path, GP, {"reason_text": "duplicate"}, key="cancel-1", version=1)
    again = post(client, path, GP, {"reason_text": "duplicate"}, key="cancel-1", version=1)
    assert first.status_code == again.status_code == 200
    assert again.json()["version"] == 2, "not a second change, and not a 412 for the retry"
    assert len(outbox(db_url)) == 2


# ---- transitions ---------------------------------------------------------------------------


def test_a_routed_referral_is_accepted_started_and_completed(
    client: TestClient, db_url: str
) -> None:
    referral = routed(client, db_url)
    assert referral["status"] == "routed" and referral["version"] == 2
    rid = referral["id"]
    assert client.get(f"/referrals/{rid}", headers=TEAM).json()["allowed_actions"] == [
        "accept",
        "reject",
        "redirect",
        "request-info",
        "message",
        "record-nhs-number",
    ]
    accepted = post(client, f"/referrals/{rid}/accept", TEAM, version=2)
    assert accepted.json()["status"] == "accepted" and accepted.headers["etag"] == '"3"'
    assert (
        post(client, f"/referrals/{rid}/start", TEAM, {}, version=3).json()["status"]
        == "in_progress"
    )
    done = post(
        client,
        f"/referrals/{rid}/complete",
        TEAM,
        {"outcome": "remained-at-home", "summary": "ok"},
        version=4,
    )
    assert (done.json()["status"], done.json()["outcome"], done.json()["allowed_actions"]) == (
        "completed",
        "remained-at-home",
        [],
    )
    history = client.get(f"/referrals/{rid}/history", headers=GP).json()
    assert [h["action"] for h in history] == ["submit", "route", "accept", "start", "complete"]
    assert history[-1]["reason_code"] == "remained-at-home" and history[-1]["note"] == "ok"
    types = [
        decode(r.key, r.value, [(n, v.encode()) for n, v in r.headers]).type for r in outbox(db_url)
    ]
    assert [t.split(".")[2] for t in types] == [
        "ReferralSubmitted",
        "ReferralAccepted",
        "ReferralStarted",
        "ReferralCompleted",
    ]


def test_rejection_sends_it_back_to_routing_and_hides_it_from_the_decliner(
    client: TestClient, db_url: str
) -> None:
    rid = routed(client, db_url)["id"]
    rejected = post(
        client, f"/referrals/{rid}/reject", TEAM, {"reason_code": "failed-contact"}, version=2
    )
    assert rejected.json()["status"] == "submitted" and rejected.json()["assigned_org"] is None
    problem(client.get(f"/referrals/{rid}", headers=TEAM), 404)


def test_transition_errors(client: TestClient, db_url: str) -> None:
    rid = routed(client, db_url)["id"]
    accept = f"/referrals/{rid}/accept"
    assert problem(post(client, accept, TEAM), 428)["title"] == "Precondition required"
    assert (
        "if-match"
        in problem(post(client, accept, TEAM, **{"If-Match": "yesterday"}), 422)["detail"]
    )
    stale = problem(post(client, accept, TEAM, version=1), 412)
    assert stale["current_version"] == 2
    not_theirs = problem(post(client, accept, GP, version=2), 403)
    assert not_theirs["allowed_actions"] == ["amend", "cancel", "message", "record-nhs-number"]
    problem(post(client, accept, STRANGER, version=2), 404)
    post(client, accept, TEAM, version=2)
    wrong_state = problem(
        post(
            client, f"/referrals/{rid}/reject", TEAM, {"reason_code": "failed-contact"}, version=3
        ),
        409,
    )
    assert wrong_state["allowed_actions"] == [
        "start",
        "message",
        "report-progress",
        "fail",
        "record-nhs-number",
    ]
    assert "accepted" in wrong_state["detail"]
    problem(post(client, "/referrals/no-such-id/accept", TEAM, version=1), 404)


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("reject", {}, "reason_code"),
        ("reject", {"reason_code": "other"}, "reason_text"),
        ("redirect", {"reason_text": "x"}, "target_provider_type"),
        ("redirect", {"target_org": "??", "reason_text": "x"}, "target_org"),
        ("complete", {"outcome": "other"}, "summary"),
        ("complete", {"outcome": "package-of-care-arranged"}, "outcome"),
        ("cancel", {}, "reason_text"),
        ("cancel", {"reason_code": "other"}, "reason_text"),
        ("cancel", {"reason_code": "bored"}, "reason_code"),
        ("request-info", {}, "question"),
        ("request-info", {"question": "  "}, "question"),
        ("provide-info", {"answer": ""}, "answer"),
        ("provide-info", {"answer": "yes", "attachment_id": "not-ours"}, "attachment_id"),
        ("message", {"text": "see letter", "attachment_id": "not-ours"}, "attachment_id"),
        ("fail", {"reason_code": "other"}, "reason_text"),
        ("fail", {"reason_code": "lost"}, "reason_code"),
        ("report-progress", {"progress_code": "other"}, "text"),
        ("amend", {"patient": {"postcode": "BS1 1AA"}}, "patient.postcode"),
        ("amend", {"priority": "urgent"}, "body"),
        ("amend", {"colour": "blue"}, "colour"),
        ("amend", {"patient": {"nhs_number": "4010232137"}}, "patient.nhs_number"),
        ("amend", {"consent": {"basis": "implied"}}, "consent.basis"),
        ("redirect", {"target_provider_type": "social-care", "reason_text": "x"}, "consent"),
        (
            "record-nhs-number",
            {"nhs_number": "9434765918", "verification": "verified"},
            "nhs_number",
        ),
        (
            "record-nhs-number",
            {"nhs_number": "9434765919", "verification": "absent"},
            "verification",
        ),
        ("record-nhs-number", {"nhs_number": "9434765919"}, "verification"),
    ],
)
def test_transition_bodies_are_checked(
    client: TestClient, db_url: str, action: str, body: dict, field: str
) -> None:
    referral = routed(client, db_url)
    rid = referral["id"]
    who = GP if action in {"amend", "cancel", "record-nhs-number"} else TEAM
    if action in {"complete", "fail", "report-progress"}:
        post(client, f"/referrals/{rid}/accept", TEAM, version=2)
        post(client, f"/referrals/{rid}/start", TEAM, version=3)
        response = post(client, f"/referrals/{rid}/{action}", TEAM, body, version=4)
    elif action == "provide-info":
        post(client, f"/referrals/{rid}/request-info", TEAM, {"question": "why?"}, version=2)
        response = post(client, f"/referrals/{rid}/provide-info", GP, body, version=3)
    else:
        response = post(client, f"/referrals/{referral['id']}/{action}", who, body, version=2)
    errors = problem(response, 422)["errors"]
    assert field in [e["field"] for e in errors]


def test_amend_creates_a_new_version_with_its_event(client: TestClient, db_url: str) -> None:
    referral = submit(client)
    amended = post(
        client,
        f"/referrals/{referral['id']}/amend",
        GP,
        {"priority": "stat", "clinical_summary": "worse"},
        version=1,
    )
    assert amended.json()["version"] == 2 and amended.json()["priority"] == "stat"
    assert amended.json()["due_at"] < referral["due_at"]
    event = decode(
        *(lambda r: (r.key, r.value, [(n, v.encode()) for n, v in r.headers]))(outbox(db_url)[-1])
    )
    assert event.payload().changed == ["priority", "clinical_summary"]


def test_ops_reroute_an_unroutable_referral(client: TestClient, db_url: str) -> None:
    rid = submit(client)["id"]
    with bootstrap(Settings(database_url=db_url)).uow() as uow:
        uow.referrals.get(rid).record_unroutable(datetime.now(UTC), "routing-event-2")
        uow.commit()
    assert client.get(f"/referrals/{rid}", headers=OPS).json()["allowed_actions"] == ["reroute"]
    problem(post(client, f"/referrals/{rid}/reroute", GP, {"reason_text": "x"}, version=2), 403)
    rerouted = post(
        client,
        f"/referrals/{rid}/reroute",
        OPS,
        {"target_org": "RXA02", "reason_text": "cover"},
        version=2,
    )
    assert rerouted.json()["status"] == "submitted"


# ---- reading -------------------------------------------------------------------------------


def test_a_referral_the_caller_may_not_see_is_404(client: TestClient) -> None:
    rid = submit(client)["id"]
    for path in (f"/referrals/{rid}", f"/referrals/{rid}/history", "/referrals/no-such-id"):
        assert problem(client.get(path, headers=STRANGER), 404)["title"] == "Referral not found"
    assert client.get(f"/referrals/{rid}", headers=OPS).status_code == 200


def test_worklists_filter_sort_by_due_time_and_page_with_a_cursor(client: TestClient) -> None:
    made = [submit(client, priority=p)["id"] for p in ("routine", "stat", "urgent", "asap", "stat")]
    order = [made[1], made[4], made[3], made[2], made[0]]  # stat, stat, asap, urgent, routine
    seen, cursor = [], None
    while True:
        page = client.get(
            "/referrals",
            params={"view": "sent", "limit": 2, **({"cursor": cursor} if cursor else {})},
            headers=GP,
        ).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen[:2] in (order[:2], order[1::-1]) and seen[2:] == order[2:], (
        "due time order, each once"
    )
    stat = client.get(
        "/referrals",
        params=[("view", "sent"), ("priority", "stat"), ("priority", "asap")],
        headers=GP,
    ).json()
    assert len(stat["items"]) == 3
    assert client.get("/referrals", params={"view": "assigned"}, headers=GP).json()["items"] == []
    assert (
        client.get("/referrals", params={"view": "sent", "status": "routed"}, headers=GP).json()[
            "items"
        ]
        == []
    )
    assert client.get("/referrals", params={"view": "sent"}, headers=STRANGER).json()["items"] == []
    assert len(client.get("/referrals", params={"view": "all"}, headers=OPS).json()["items"]) == 5
    problem(client.get("/referrals", params={"view": "all"}, headers=GP), 403)
    assert (
        problem(client.get("/referrals", params={"cursor": "nonsense!"}, headers=GP), 422)[
            "errors"
        ][0]["field"]
        == "cursor"
    )


def test_openapi_describes_every_operation_with_examples(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    operations = [
        (path, method, op) for path, item in doc["paths"].items() for method, op in item.items()
    ]
    assert len(operations) >= 12
    for path, method, op in operations:
        assert op.get("summary"), f"{method} {path} has no summary"
    actions = {
        p.rsplit("/", 1)[-1] for p in doc["paths"] if p.startswith("/referrals/{referral_id}/")
    }
    assert actions >= {
        "amend",
        "accept",
        "reject",
        "redirect",
        "start",
        "complete",
        "cancel",
        "reroute",
        "history",
    }
    schemas = doc["components"]["schemas"]
    for name in (
        "ReferralCreate",
        "ReferralAmend",
        "Reject",
        "Redirect",
        "Complete",
        "Cancel",
        "Reroute",
    ):
        assert schemas[name].get("examples"), f"{name} has no example"
    accept = doc["paths"]["/referrals/{referral_id}/accept"]["post"]
    assert {"409", "412", "428"} <= set(accept["responses"])


def test_worklist_lines_carry_no_patient_identifiers_or_clinical_text(client: TestClient) -> None:
    rid = submit(
        client,
        patient={
            "nhs_number": "9434765919",
            "name": "Alex Smith",
            "birth_date": "1941-03-07",
            "postcode": "BS5 0AA",
        },
        reason={"code": "129839007", "text": "Fall at home, lives alone with her cat"},
        clinical_summary="Long lie, confused",
    )["id"]
    [line] = client.get("/referrals", params={"view": "sent"}, headers=GP).json()["items"]
    assert line["id"] == rid
    assert (line["postcode_district"], line["reason_code"]) == ("BS5", "129839007")
    text = json.dumps(line)
    for private in ("9434765919", "Alex Smith", "1941-03-07", "BS5 0AA", "her cat", "Long lie"):
        assert private not in text
    full = client.get(f"/referrals/{rid}", headers=GP).json()  # the recorded way to see them
    assert full["patient"]["name"] == "Alex Smith"


# ---- closing the loop ----------------------------------------------------------------------


def test_a_question_and_its_answer_with_a_document_keep_the_organisation_and_the_history(
    client: TestClient, db_url: str
) -> None:
    rid = routed(client, db_url)["id"]
    asked = post(
        client, f"/referrals/{rid}/request-info", TEAM, {"question": "Key safe?"}, version=2
    )
    assert asked.status_code == 200, asked.text
    assert (asked.json()["status"], asked.json()["assigned_org"]) == ("info_requested", "RXA01")
    assert client.get(f"/referrals/{rid}", headers=GP).json()["allowed_actions"] == [
        "amend",
        "cancel",
        "provide-info",
        "message",
        "record-nhs-number",
    ]
    problem(post(client, f"/referrals/{rid}/accept", TEAM, version=3), 409)
    letter = client.post(
        f"/referrals/{rid}/attachments",
        params={"filename": "access.txt"},
        content=b"Key safe code 4512",
        headers={**GP, "content-type": "text/plain", "Idempotency-Key": str(uuid.uuid4())},
    ).json()
    answer = {"answer": "Yes, by the door", "attachment_id": letter["id"]}
    answered = post(client, f"/referrals/{rid}/provide-info", GP, answer, version=3)
    assert (answered.json()["status"], answered.json()["assigned_org"]) == ("routed", "RXA01")
    said = post(client, f"/referrals/{rid}/message", TEAM, {"text": "On our way"}, version=4)
    assert (said.json()["status"], said.json()["version"]) == ("routed", 5)
    history = client.get(f"/referrals/{rid}/history", headers=TEAM).json()
    assert [(h["action"], h["actor_org"], h["note"], h["attachment_id"]) for h in history[-3:]] == [
        ("request-info", "RXA01", "Key safe?", None),
        ("provide-info", "B81001", "Yes, by the door", letter["id"]),
        ("message", "RXA01", "On our way", None),
    ]
    kinds = [(e.type.split(".")[2], e.payload().status) for e in events(db_url)[-3:]]
    assert kinds == [
        ("ReferralInfoRequested", "info_requested"),
        ("ReferralInfoProvided", "routed"),
        ("ReferralMessageAdded", "routed"),
    ]
    assert events(db_url)[-2].payload().attachment_id == letter["id"]


def test_interim_updates_then_a_failed_end_with_its_coded_reason(
    client: TestClient, db_url: str
) -> None:
    rid = routed(client, db_url)["id"]
    post(client, f"/referrals/{rid}/accept", TEAM, version=2)
    update = {"progress_code": "visit-booked", "text": "15:30 today"}
    updated = post(client, f"/referrals/{rid}/report-progress", TEAM, update, version=3)
    assert (updated.json()["status"], updated.json()["version"]) == ("accepted", 4)
    problem(post(client, f"/referrals/{rid}/report-progress", GP, update, version=4), 403)
    failed = post(
        client, f"/referrals/{rid}/fail", TEAM, {"reason_code": "did-not-attend"}, version=4
    )
    assert (failed.json()["status"], failed.json()["allowed_actions"]) == ("failed", [])
    assert client.get(f"/referrals/{rid}", headers=GP).json()["allowed_actions"] == []
    last = events(db_url)[-1].payload()
    assert (type(last).__name__, last.reason_code) == ("ReferralFailed", "did-not-attend")
    history = client.get(f"/referrals/{rid}/history", headers=GP).json()
    assert [(h["action"], h["reason_code"]) for h in history[-2:]] == [
        ("report-progress", "visit-booked"),
        ("fail", "did-not-attend"),
    ]


def test_a_coded_cancellation_reaches_the_event(client: TestClient, db_url: str) -> None:
    rid = submit(client)["id"]
    cancelled = post(
        client, f"/referrals/{rid}/cancel", GP, {"reason_code": "recovered"}, version=1
    )
    assert cancelled.json()["status"] == "cancelled"
    assert events(db_url)[-1].payload().reason_code == "recovered"


def test_requests_in_flight_are_counted_back_down_whatever_the_answer(
    client: TestClient, db_url: str
) -> None:
    """Alone, a journey's transaction runs on the event loop; a count left behind by an
    error would send every later one to the thread pool."""
    referral = routed(client, db_url)
    accept = f"/referrals/{referral['id']}/accept"
    assert post(client, accept, TEAM, None).status_code == 428
    assert client.get(f"/referrals/{uuid.uuid4()}", headers=TEAM).status_code == 404
    assert post(client, accept, TEAM, None, version=99).status_code == 412
    accepted = post(client, accept, TEAM, None, version=referral["version"])
    assert accepted.status_code == 200, accepted.text
    assert client.app.state.in_flight.count == 0  # type: ignore[attr-defined]


def test_an_unauthenticated_request_is_401_whatever_else_is_wrong(client: TestClient) -> None:
    """The caller is learnt before the route's headers and body are checked: no identity
    means 401, not the 400/428/422 a missing or malformed header or body would get."""
    for path, headers, body in [
        ("/referrals/r-1/accept", {}, {}),
        ("/referrals/r-1/accept", {"Idempotency-Key": "k-1", "If-Match": "three"}, {}),
        ("/referrals", {}, BODY),
        ("/referrals", {"Idempotency-Key": "k-2"}, {"unknown": 1}),
    ]:
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 401, (path, headers, response.text)
        assert response.headers["content-type"] == "application/problem+json"


# ---- the answers to a missing or malformed If-Match / Idempotency-Key ------------------------

KEY_PATTERN = "String should match pattern '^[ -~]{1,255}$'"
ETAG_PATTERN = "String should match pattern '^\\s*(W/)?\"?[0-9]{1,18}\"?\\s*$'"
KEY_REQUIRED = (
    400,
    "Idempotency-Key required",
    "every POST needs an Idempotency-Key header, unique per logical request",
)
IF_MATCH_REQUIRED = (
    428,
    "Precondition required",
    "send If-Match with the ETag of the version you read (RFC 6585)",
)


def invalid(*errors: tuple[str, str, str]) -> tuple[int, str, str, list[dict[str, str]]]:
    """The 422 FastAPI's validation gives, as problem+json: each field in the order checked."""
    detail = "; ".join(f"{field}: {message}" for field, _, message in errors)
    listed = [{"field": f, "rule": r, "message": m} for f, r, m in errors]
    return 422, "Invalid request", detail, listed


BAD_KEY = ("header.idempotency-key", "string_pattern_mismatch", KEY_PATTERN)
BAD_ETAG = ("header.if-match", "string_pattern_mismatch", ETAG_PATTERN)


@pytest.mark.parametrize(
    ("action", "headers", "body", "expected"),
    [
        ("", {}, BODY, KEY_REQUIRED),
        ("", {"Idempotency-Key": "k" * 256}, BODY, invalid(BAD_KEY)),
        ("", {"Idempotency-Key": "tab\there"}, BODY, invalid(BAD_KEY)),
        ("", {"Idempotency-Key": ""}, BODY, invalid(BAD_KEY)),
        ("", {}, {**BODY, "priority": "x"}, KEY_REQUIRED),
        (
            "",
            {"Idempotency-Key": "tab\there"},
            {**BODY, "priority": "x"},
            invalid(
                BAD_KEY,
                ("priority", "enum", "Input should be 'routine', 'urgent', 'asap' or 'stat'"),
            ),
        ),
        ("accept", {"Idempotency-Key": "a"}, None, IF_MATCH_REQUIRED),
        ("accept", {"Idempotency-Key": "a", "If-Match": '"abc"'}, None, invalid(BAD_ETAG)),
        ("accept", {"Idempotency-Key": "a", "If-Match": '"2" x'}, None, invalid(BAD_ETAG)),
        ("accept", {"If-Match": '"2"'}, None, KEY_REQUIRED),
        ("accept", {}, None, IF_MATCH_REQUIRED),
        ("accept", {"If-Match": "x"}, None, KEY_REQUIRED),
        (
            "accept",
            {"Idempotency-Key": "k" * 256, "If-Match": "x"},
            None,
            invalid(BAD_KEY, BAD_ETAG),
        ),
        (
            "complete",
            {"Idempotency-Key": "a", "If-Match": "x"},
            {"summary": 3},
            invalid(
                BAD_ETAG,
                ("outcome", "missing", "Field required"),
                ("summary", "string_type", "Input should be a valid string"),
            ),
        ),
        ("complete", {"Idempotency-Key": "a"}, {"summary": 3}, IF_MATCH_REQUIRED),
        ("attachments", {"Content-Type": "text/plain"}, b"hello", KEY_REQUIRED),
        (
            "attachments",
            {"Content-Type": "text/plain", "Idempotency-Key": "tab\t"},
            b"hello",
            invalid(BAD_KEY, ("query.filename", "missing", "Field required")),
        ),
    ],
)
def test_a_missing_or_malformed_if_match_or_idempotency_key_gets_its_answer(
    client: TestClient,
    db_url: str,
    action: str,
    headers: dict[str, str],
    body: Any,
    expected: tuple[Any, ...],
) -> None:
    """Each answer whole: its status, title and detail, and for a 422 every field broken in
    the order the request is checked (headers, then the query, then the body), the headers'
    answers (400, 428) winning over anything else wrong with the request."""
    path = "/referrals"
    if action:
        path = f"/referrals/{routed(client, db_url)['id']}/{action}"
        if action == "attachments" and "Idempotency-Key" not in headers:
            path += "?filename=a.txt"
    caller = GP if not action else TEAM
    if isinstance(body, bytes):
        answer = client.post(path, content=body, headers={**caller, **headers})
    else:
        answer = client.post(path, json=body, headers={**caller, **headers})
    status, title, detail, *errors = expected
    want = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    want |= {"instance": path.split("?")[0]} | ({"errors": errors[0]} if errors else {})
    assert problem(answer, status) == want
    assert len(outbox(db_url)) == (1 if action else 0), "nothing stored"


@pytest.mark.parametrize("action", ["", "accept"])
def test_without_an_identity_a_write_is_401_whatever_its_headers(
    client: TestClient, db_url: str, action: str
) -> None:
    path = f"/referrals/{routed(client, db_url)['id']}/{action}" if action else "/referrals"
    answer = client.post(path, json=BODY if not action else None, headers={"If-Match": "x"})
    assert problem(answer, 401)["title"] == "Unauthenticated"


@pytest.mark.parametrize("etag", ['"2"', "2", 'W/"2"', ' W/"2" ', '"2'])
def test_if_match_takes_the_etag_weak_bare_or_padded(
    client: TestClient, db_url: str, etag: str
) -> None:
    rid = routed(client, db_url)["id"]
    answer = client.post(
        f"/referrals/{rid}/accept", headers={**TEAM, "Idempotency-Key": "a", "If-Match": etag}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == 3
    stale = client.post(
        f"/referrals/{rid}/start", headers={**TEAM, "Idempotency-Key": "b", "If-Match": etag}
    )
    assert problem(stale, 412)["current_version"] == 3
