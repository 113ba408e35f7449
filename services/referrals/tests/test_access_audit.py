"""Reads of patient-identifying data are recorded: each read that returns a referral, its
attachments or what was said about it (history, Communications) writes an access record and stages a ReferralAccessed event on
referrals.access.v1, in one transaction; refused reads record nothing."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from referrals.adapters.tables import AccessRecordRow
from rx_contracts import Envelope, ReferralAccessed, decode
from rx_contracts.topics import REFERRAL_ACCESS
from rx_messaging.tables import OutboxMessage
from sqlmodel import Session, select

from .fhir_support import OURS, TEAM, route

GP = {"X-Organisation": "B81001", "X-Roles": "provider", "X-Practitioner": "G1234567"}
OPS = {"X-Organisation": "RX0PS", "X-Roles": "ops"}
STRANGER = {"X-Organisation": "L81002", "X-Roles": "provider"}
BODY = {
    "referrer": {"organisation": "B81001"},
    "patient": {"nhs_number": "9434765919", "name": "Alex Smith", "postcode": "BS5 0AA"},
    "service_type": "urgent-community-response",
}


def post(client: TestClient, path: str, who: dict[str, str], **kwargs: object) -> dict:
    headers = {**who, "Idempotency-Key": str(uuid.uuid4()), **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    response = client.post(path, headers=headers, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 201, response.text
    return response.json()


def accesses(client: TestClient) -> tuple[list[AccessRecordRow], list[Envelope]]:
    engine = client.app.state.container.engine  # type: ignore[attr-defined]
    with Session(engine) as s:
        rows = list(s.exec(select(AccessRecordRow).order_by(AccessRecordRow.at)))
        staged = s.exec(
            select(OutboxMessage)
            .where(OutboxMessage.topic == REFERRAL_ACCESS)
            .order_by(OutboxMessage.id)
        )
        events = [decode(m.key, m.value, [(n, v.encode()) for n, v in m.headers]) for m in staged]
    return rows, events


def test_reading_a_referral_records_who_read_it_and_stages_an_access_event(
    client: TestClient,
) -> None:
    rid = post(client, "/referrals", GP, json=BODY)["id"]
    assert accesses(client) == ([], []), "creating is not a read"

    assert client.get(f"/referrals/{rid}", headers=GP).status_code == 200
    assert client.get(f"/referrals/{rid}", headers=OPS).status_code == 200

    rows, events = accesses(client)
    assert [(r.organisation, r.practitioner, r.roles, r.accessed) for r in rows] == [
        ("B81001", "G1234567", "provider", "referral"),
        ("RX0PS", None, "ops", "referral"),
    ]
    assert [e.type for e in events] == [ReferralAccessed.EVENT_TYPE] * 2
    first = events[0].payload()
    assert isinstance(first, ReferralAccessed)
    assert (first.referral_id, first.actor.organisation, first.actor.practitioner) == (
        rid,
        "B81001",
        "G1234567",
    )
    assert first.access_id == rows[0].id and events[0].id == rows[0].event_id
    assert events[0].subject == rid, "keyed by referral, like every referral event"
    raw = str([e.data for e in events])
    assert "9434765919" not in raw and "Alex Smith" not in raw, "no patient data in events"


def test_reading_attachments_records_the_list_and_each_document(client: TestClient) -> None:
    rid = post(client, "/referrals", GP, json=BODY)["id"]
    attachment = post(
        client,
        f"/referrals/{rid}/attachments",
        GP,
        params={"filename": "letter.txt"},
        content=b"hello",
        headers={"content-type": "text/plain"},
    )
    assert accesses(client) == ([], []), "uploading is not a read"
    client.get(f"/referrals/{rid}/attachments", headers=OPS)
    client.get(f"/referrals/{rid}/attachments/{attachment['id']}", headers=GP)
    rows, events = accesses(client)
    assert [(r.accessed, r.attachment_id) for r in rows] == [
        ("attachment-list", None),
        ("attachment", attachment["id"]),
    ]
    assert [e.payload().accessed for e in events] == ["attachment-list", "attachment"]  # type: ignore[attr-defined]


def test_refused_and_missing_reads_record_nothing(client: TestClient) -> None:
    rid = post(client, "/referrals", GP, json=BODY)["id"]
    assert client.get(f"/referrals/{rid}", headers=STRANGER).status_code == 404
    assert client.get(f"/referrals/{rid}/attachments", headers=STRANGER).status_code == 404
    assert client.get(f"/referrals/{rid}/attachments/nope", headers=GP).status_code == 404
    assert client.get("/referrals/nope", headers=OPS).status_code == 404
    assert accesses(client) == ([], [])


def test_reading_what_was_said_records_the_communications_read(
    client: TestClient, db_url: str
) -> None:
    """The history's notes and the FHIR Communications are what referrer and provider said
    about the patient: each read is recorded; writing a message, a refused read and an unknown
    Communication are not."""
    rid = post(client, "/referrals", GP, json=BODY)["id"]
    route(db_url, rid)
    message = {"resourceType": "Communication", "status": "completed"}
    sent = client.post(
        "/fhir/R4/Communication",
        json={
            **message,
            "basedOn": [{"reference": f"ServiceRequest/{rid}"}],
            "category": [
                {"coding": [{"system": f"{OURS}/communication-category", "code": "message"}]}
            ],
            "payload": [{"contentString": "Lives alone since March"}],
        },
        headers={**GP, "Idempotency-Key": str(uuid.uuid4()), "If-Match": 'W/"2"'},
    )
    assert sent.status_code == 201, sent.text
    assert accesses(client) == ([], []), "saying something is not a read"

    assert client.get(f"/referrals/{rid}/history", headers=TEAM).status_code == 200
    found = client.get(
        "/fhir/R4/Communication", params={"based-on": f"ServiceRequest/{rid}"}, headers=OPS
    )
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [sent.json()["id"]]
    assert client.get(f"/fhir/R4/Communication/{sent.json()['id']}", headers=GP).status_code == 200
    assert client.get(f"/referrals/{rid}/history", headers=STRANGER).status_code == 404
    unknown = client.get(f"/fhir/R4/Communication/{rid}-99", headers=GP)
    assert unknown.status_code == 404, unknown.text

    rows, events = accesses(client)
    assert [(r.organisation, r.accessed) for r in rows] == [
        ("RXA01", "communications"),
        ("RX0PS", "communications"),
        ("B81001", "communications"),
    ]
    assert [e.payload().accessed for e in events] == ["communications"] * 3  # type: ignore[attr-defined]
    assert "Lives alone" not in str([e.data for e in events]), "what was said stays out"
