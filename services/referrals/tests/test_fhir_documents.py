"""A referral's documents over FHIR: the ServiceRequest names each attachment as a
DocumentReference in ``supportingInfo``; DocumentReference read and search describe them,
Binary read serves their bytes (or a Binary resource, asked for FHIR JSON). The same checks
and access records as the JSON API's attachment reads; every resource passes the HAPI FHIR
validator."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

import pytest
from devstack.fhir_validator import FhirValidator
from fastapi.testclient import TestClient
from referrals.adapters.tables import AccessRecordRow
from referrals.domain.attachments import MAX_BYTES
from sqlmodel import Session, select

from .fhir_support import (
    BAD_IDENTIFIERS,
    BASE,
    GP,
    OPS,
    OTHER_TEAM,
    STRANGER,
    TEAM,
    create,
    outcome,
    route,
    write,
)
from .test_fhir import valid

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
FHIR = {"Accept": "application/fhir+json"}


def attach(
    client: TestClient, rid: str, who: dict[str, str], name: str, content: bytes, kind: str
) -> dict[str, Any]:
    """Upload through the JSON API, as documents are attached."""
    response = client.post(
        f"/referrals/{rid}/attachments",
        params={"filename": name},
        content=content,
        headers={**who, "content-type": kind, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def accesses(client: TestClient) -> list[tuple[str, str, str | None]]:
    engine = client.app.state.container.engine  # type: ignore[attr-defined]
    with Session(engine) as s:
        rows = s.exec(select(AccessRecordRow).order_by(AccessRecordRow.at))
        return [(r.organisation, r.accessed, r.attachment_id) for r in rows]


@pytest.fixture
def documents(client: TestClient, db_url: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A referral routed to RXA01, with a letter from the referrer and a photo from RXA01."""
    rid = create(client)
    route(db_url, rid)
    letter = attach(client, rid, GP, "letter.txt", b"Key safe code 4512", "text/plain")
    photo = attach(client, rid, TEAM, "wound (day 2).png", PNG, "image/png")
    return rid, letter, photo


def test_the_service_request_names_its_documents_and_each_is_described_and_served(
    client: TestClient,
    fhir_validator: FhirValidator,
    documents: tuple[str, dict[str, Any], dict[str, Any]],
) -> None:
    rid, letter, photo = documents
    sr = valid(fhir_validator, client.get(f"{BASE}/ServiceRequest/{rid}", headers=TEAM).json())
    assert sr["supportingInfo"] == [
        {"reference": f"DocumentReference/{letter['id']}"},
        {"reference": f"DocumentReference/{photo['id']}"},
    ]

    read = client.get(f"{BASE}/DocumentReference/{photo['id']}", headers=GP)
    assert read.status_code == 200, read.text
    assert read.headers["etag"] == 'W/"1"'
    described = valid(fhir_validator, read.json())
    assert described["status"] == "current"
    assert described["subject"] == {"reference": f"Patient/{rid}"}
    assert described["context"]["related"] == [{"reference": f"ServiceRequest/{rid}"}]
    assert described["author"][0]["identifier"]["value"] == "RXA01"
    [content] = described["content"]
    attachment = content["attachment"]
    assert (attachment["contentType"], attachment["size"], attachment["title"]) == (
        "image/png",
        len(PNG),
        "wound (day 2).png",
    )
    assert attachment["url"] == f"http://testserver{BASE}/Binary/{photo['id']}"
    assert attachment["creation"].endswith("Z")

    found = client.get(
        f"{BASE}/DocumentReference", params={"related": f"ServiceRequest/{rid}"}, headers=TEAM
    )
    bundle = valid(fhir_validator, found.json())
    assert bundle["type"] == "searchset"
    assert [e["resource"]["id"] for e in bundle["entry"]] == [letter["id"], photo["id"]]
    assert bundle["entry"][1]["resource"] == described
    assert bundle["entry"][0]["fullUrl"].endswith(f"{BASE}/DocumentReference/{letter['id']}")

    raw = client.get(attachment["url"], headers=TEAM)
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "image/png"
    assert raw.content == PNG
    assert raw.headers["x-content-type-options"] == "nosniff"

    as_fhir = client.get(f"{BASE}/Binary/{letter['id']}", headers={**GP, **FHIR})
    assert as_fhir.headers["content-type"].startswith("application/fhir+json")
    binary = valid(fhir_validator, as_fhir.json())
    assert (binary["resourceType"], binary["contentType"]) == ("Binary", "text/plain")
    assert base64.b64decode(binary["data"]) == b"Key safe code 4512"
    formatted = client.get(f"{BASE}/Binary/{photo['id']}", params={"_format": "json"}, headers=GP)
    assert base64.b64decode(formatted.json()["data"]) == PNG


def test_reads_are_recorded_as_the_json_api_s_attachment_reads(
    client: TestClient, documents: tuple[str, dict[str, Any], dict[str, Any]]
) -> None:
    rid, letter, photo = documents
    assert accesses(client) == []
    client.get(
        f"{BASE}/DocumentReference", params={"related": f"ServiceRequest/{rid}"}, headers=OPS
    )
    client.get(f"{BASE}/DocumentReference/{letter['id']}", headers=GP)
    client.get(f"{BASE}/Binary/{photo['id']}", headers=TEAM)
    client.get(f"{BASE}/Binary/{letter['id']}", headers={**GP, **FHIR})
    assert accesses(client) == [
        ("RX0PS", "attachment-list", None),
        ("B81001", "attachment-list", None),
        ("RXA01", "attachment", photo["id"]),
        ("B81001", "attachment", letter["id"]),
    ]


def test_only_who_may_see_the_referral_sees_its_documents(
    client: TestClient,
    fhir_validator: FhirValidator,
    documents: tuple[str, dict[str, Any], dict[str, Any]],
) -> None:
    rid, letter, _ = documents
    for who in (STRANGER, OTHER_TEAM):
        for path in (f"/DocumentReference/{letter['id']}", f"/Binary/{letter['id']}"):
            theirs = valid(fhir_validator, outcome(client.get(f"{BASE}{path}", headers=who), 404))
            ghost = outcome(client.get(f"{BASE}{path[:-4]}0000", headers=who), 404)
            assert theirs["issue"][0]["code"] == ghost["issue"][0]["code"] == "not-found"
            assert rid not in str(theirs), "a 404 names nothing of the referral"
        found = client.get(
            f"{BASE}/DocumentReference", params={"related": f"ServiceRequest/{rid}"}, headers=who
        )
        assert "entry" not in valid(fhir_validator, found.json()), "an empty searchset"
    assert accesses(client) == [], "nothing shown, nothing recorded"
    for who in (GP, TEAM, OPS):
        assert client.get(f"{BASE}/Binary/{letter['id']}", headers=who).status_code == 200


def test_a_search_names_one_referral(client: TestClient, fhir_validator: FhirValidator) -> None:
    for params in ({}, {"related": "Patient/x"}, {"related": "ServiceRequest/a,ServiceRequest/b"}):
        response = client.get(f"{BASE}/DocumentReference", params=params, headers=GP)
        assert valid(fhir_validator, outcome(response, 400))["issue"][0]["expression"] == [
            "related"
        ]
    unknown = client.get(f"{BASE}/DocumentReference", params={"subject": "x"}, headers=GP)
    outcome(unknown, 400)


def test_a_service_request_put_back_as_read_keeps_its_documents(
    client: TestClient,
    fhir_validator: FhirValidator,
    documents: tuple[str, dict[str, Any], dict[str, Any]],
) -> None:
    rid, letter, photo = documents
    current = client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP).json()
    amended = {**current, "priority": "asap"}
    version = int(current["meta"]["versionId"])
    response = write(client, "PUT", f"/ServiceRequest/{rid}", GP, amended, version=version)
    assert response.status_code == 200, response.text
    after = valid(fhir_validator, response.json())
    assert after["priority"] == "asap"
    assert after["supportingInfo"] == current["supportingInfo"]
    assert client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP).json()["supportingInfo"] == [
        {"reference": f"DocumentReference/{letter['id']}"},
        {"reference": f"DocumentReference/{photo['id']}"},
    ]


# ---- upload -------------------------------------------------------------------------------------


def document(rid: str, name: str, content: bytes | str, kind: str, **more: Any) -> dict[str, Any]:
    """A DocumentReference to upload: ``content`` bytes are sent base64, a str as it is."""
    data = base64.b64encode(content).decode() if isinstance(content, bytes) else content
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [{"attachment": {"contentType": kind, "data": data, "title": name}}],
        "context": {"related": [{"reference": f"ServiceRequest/{rid}"}]},
        **more,
    }


@pytest.fixture
def referral(client: TestClient, db_url: str) -> str:
    rid = create(client)
    route(db_url, rid)
    return rid


def test_a_document_uploaded_as_a_document_reference_is_read_back_byte_for_byte(
    client: TestClient, fhir_validator: FhirValidator, referral: str
) -> None:
    sent = document(referral, "wound (day 2).png", PNG, "image/png")
    response = write(client, "POST", "/DocumentReference", TEAM, sent)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    created = valid(fhir_validator, response.json())
    assert (
        response.headers["location"] == f"http://testserver{BASE}/DocumentReference/{created['id']}"
    )
    assert response.headers["etag"] == 'W/"1"'
    assert created["author"][0]["identifier"]["value"] == "RXA01"
    assert created["context"]["related"] == [{"reference": f"ServiceRequest/{referral}"}]
    attachment = created["content"][0]["attachment"]
    assert (attachment["contentType"], attachment["size"], attachment["title"]) == (
        "image/png",
        len(PNG),
        "wound (day 2).png",
    )

    read = client.get(f"{BASE}/DocumentReference/{created['id']}", headers=GP)
    assert read.json() == created, "the answer is the DocumentReference as read"
    assert client.get(attachment["url"], headers=GP).content == PNG
    as_fhir = client.get(f"{BASE}/Binary/{created['id']}", headers={**GP, **FHIR}).json()
    assert base64.b64decode(as_fhir["data"]) == PNG
    listed = client.get(f"/referrals/{referral}/attachments", headers=GP).json()
    assert [a["id"] for a in listed] == [created["id"]], "the JSON API lists it too"
    sr = client.get(f"{BASE}/ServiceRequest/{referral}", headers=GP).json()
    assert sr["supportingInfo"][-1] == {"reference": f"DocumentReference/{created['id']}"}


def test_a_replayed_upload_gets_the_same_answer_and_attaches_once(
    client: TestClient, referral: str
) -> None:
    sent = document(referral, "letter.txt", b"Key safe code 4512", "text/plain")
    first = write(client, "POST", "/DocumentReference", GP, sent, key="upload-1")
    again = write(client, "POST", "/DocumentReference", GP, sent, key="upload-1")
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert len(client.get(f"/referrals/{referral}/attachments", headers=GP).json()) == 1
    other = document(referral, "letter.txt", b"Another code", "text/plain")
    reused = write(client, "POST", "/DocumentReference", GP, other, key="upload-1")
    assert reused.status_code == 422, "a key reused for another document is refused"
    unkeyed = client.post(f"{BASE}/DocumentReference", json=sent, headers=GP)
    assert outcome(unkeyed, 400)["issue"][0]["expression"] == ["Idempotency-Key"]


ELEMENT = "DocumentReference.content[0].attachment"


@pytest.mark.parametrize(
    ("change", "status", "expression"),
    [
        ({"kind": "application/zip"}, 422, f"{ELEMENT}.contentType"),
        ({"content": b"not a PNG at all"}, 422, f"{ELEMENT}.data"),
        ({"content": "not*base64!"}, 400, f"{ELEMENT}.data"),
        ({"name": "../etc/passwd"}, 422, f"{ELEMENT}.title"),
        ({"context": {"related": []}}, 400, "DocumentReference.context.related"),
        (
            {"context": {"related": [{"reference": "Patient/x"}]}},
            422,
            "DocumentReference.context.related",
        ),
        ({"subject": {"reference": "Patient/someone-else"}}, 422, "DocumentReference.subject"),
        ({"url": "http://elsewhere/x"}, 400, f"{ELEMENT}.url"),
    ],
)
def test_an_upload_that_breaks_a_rule_is_refused_naming_the_element(
    client: TestClient,
    fhir_validator: FhirValidator,
    referral: str,
    change: dict[str, Any],
    status: int,
    expression: str,
) -> None:
    fields: dict[str, Any] = {"name": "photo.png", "content": PNG, "kind": "image/png"}
    more = {k: v for k, v in change.items() if k not in fields and k != "url"}
    fields.update({k: v for k, v in change.items() if k in fields})
    sent = document(referral, fields["name"], fields["content"], fields["kind"], **more)
    if "url" in change:
        sent["content"][0]["attachment"]["url"] = change["url"]
    refused = valid(
        fhir_validator, outcome(write(client, "POST", "/DocumentReference", TEAM, sent), status)
    )
    assert refused["issue"][0]["expression"] == [expression]
    assert client.get(f"/referrals/{referral}/attachments", headers=GP).json() == []


def sha1(content: bytes) -> str:
    return base64.b64encode(hashlib.sha1(content, usedforsecurity=False).digest()).decode()


@pytest.mark.parametrize(
    ("sent", "status", "element"),
    [
        ({"size": len(PNG), "hash": sha1(PNG)}, 201, None),
        ({"size": len(PNG) - 1}, 422, "size"),
        ({"hash": sha1(PNG[:-1])}, 422, "hash"),
        ({"hash": "not*base64!"}, 400, "hash"),
    ],
)
def test_a_size_and_hash_sent_with_a_document_must_be_those_of_its_bytes(
    client: TestClient,
    fhir_validator: FhirValidator,
    referral: str,
    sent: dict[str, Any],
    status: int,
    element: str | None,
) -> None:
    """A sender's size and SHA-1 say what it meant to send: bytes cut short or altered on the
    way are refused, not stored."""
    body = document(referral, "photo.png", PNG, "image/png")
    body["content"][0]["attachment"].update(sent)
    response = write(client, "POST", "/DocumentReference", TEAM, body)
    assert response.status_code == status, response.text
    stored = client.get(f"/referrals/{referral}/attachments", headers=GP).json()
    if element is None:
        assert response.json()["content"][0]["attachment"]["size"] == len(PNG)
        assert len(stored) == 1
    else:
        refused = valid(fhir_validator, response.json())
        assert refused["issue"][0]["expression"] == [f"{ELEMENT}.{element}"]
        assert stored == []


def test_only_the_referrer_or_the_assigned_organisation_may_upload(
    client: TestClient, fhir_validator: FhirValidator, referral: str
) -> None:
    sent = document(referral, "letter.txt", b"Key safe code 4512", "text/plain")
    for who in (STRANGER, OTHER_TEAM):
        hidden = outcome(write(client, "POST", "/DocumentReference", who, sent), 404)
        assert valid(fhir_validator, hidden)["issue"][0]["code"] == "not-found"
    forbidden = outcome(write(client, "POST", "/DocumentReference", OPS, sent), 403)
    assert valid(fhir_validator, forbidden)["issue"][0]["code"] == "forbidden"
    assert client.get(f"/referrals/{referral}/attachments", headers=GP).json() == []


def test_the_json_api_s_size_limit_holds_and_a_document_up_to_it_is_taken(
    client: TestClient, referral: str
) -> None:
    largest = b"%PDF-" + b"x" * (MAX_BYTES - 5)
    taken = write(
        client,
        "POST",
        "/DocumentReference",
        GP,
        document(referral, "a.pdf", largest, "application/pdf"),
    )
    assert taken.status_code == 201, taken.text[:500]
    over = document(referral, "b.pdf", largest + b"x", "application/pdf")
    refused = outcome(write(client, "POST", "/DocumentReference", GP, over), 413)
    assert refused["issue"][0]["expression"] == [f"{ELEMENT}.data"]
    assert len(client.get(f"/referrals/{referral}/attachments", headers=GP).json()) == 1


def test_a_finished_referral_takes_no_documents(client: TestClient, referral: str) -> None:
    version = client.get(f"/referrals/{referral}", headers=GP).headers["etag"]
    cancel = client.post(
        f"/referrals/{referral}/cancel",
        json={"reason_text": "no longer needed"},
        headers={**GP, "Idempotency-Key": "cancel", "If-Match": version},
    )
    assert cancel.status_code == 200, cancel.text
    sent = document(referral, "late.txt", b"too late", "text/plain")
    assert (
        outcome(write(client, "POST", "/DocumentReference", GP, sent), 409)["issue"][0]["code"]
        == "conflict"
    )


# ---- the uploader's own identifier (masterIdentifier) -------------------------------------------

DOCS = "https://gp-system.example/documents"


def identified(rid: str, value: str, name: str = "letter.txt") -> dict[str, Any]:
    """A document carrying the uploader's identifier ``value``."""
    sent = document(rid, name, b"Key safe code 4512", "text/plain")
    return {**sent, "masterIdentifier": {"system": DOCS, "value": value}}


def search_ids(client: TestClient, who: dict[str, str], **params: str) -> list[str]:
    found = client.get(f"{BASE}/DocumentReference", params=params, headers=who)
    assert found.status_code == 200, found.text
    return [e["resource"]["id"] for e in found.json().get("entry", [])]


def test_a_document_s_master_identifier_is_kept_read_back_and_searchable(
    client: TestClient, db_url: str, fhir_validator: FhirValidator, referral: str
) -> None:
    made = write(client, "POST", "/DocumentReference", TEAM, identified(referral, "D-1"))
    assert made.status_code == 201, made.text
    created = valid(fhir_validator, made.json())
    assert created["masterIdentifier"] == {"system": DOCS, "value": "D-1"}
    read = client.get(f"{BASE}/DocumentReference/{created['id']}", headers=GP)
    assert read.json() == created
    plain = write(
        client, "POST", "/DocumentReference", GP, document(referral, "a.txt", b"x", "text/plain")
    )
    assert "masterIdentifier" not in plain.json()
    listed = client.get(f"/referrals/{referral}/attachments", headers=GP).json()
    assert [a["identifier"] for a in listed] == [{"system": DOCS, "value": "D-1"}, None]

    # Another referral's document with the same identifier, uploaded by its referrer.
    other = create(client)
    route(db_url, other, "RXA02")
    theirs = write(client, "POST", "/DocumentReference", GP, identified(other, "D-1"))
    assert theirs.status_code == 201, theirs.text

    token = f"{DOCS}|D-1"
    assert search_ids(client, GP, identifier=token) == [created["id"], theirs.json()["id"]]
    assert search_ids(client, TEAM, identifier=token) == [created["id"]], "only what it may see"
    assert search_ids(client, STRANGER, identifier=token) == []
    assert search_ids(client, OTHER_TEAM, identifier=token) == [theirs.json()["id"]]
    assert search_ids(client, GP, identifier=token, related=f"ServiceRequest/{other}") == [
        theirs.json()["id"]
    ]
    assert search_ids(client, GP, identifier=f"{DOCS}|D-2") == []
    assert search_ids(client, GP, identifier="https://elsewhere.example|D-1") == []
    bundle = client.get(
        f"{BASE}/DocumentReference", params={"identifier": token}, headers=TEAM
    ).json()
    assert valid(fhir_validator, bundle)["entry"][0]["resource"] == created
    bad = client.get(f"{BASE}/DocumentReference", params={"identifier": "D-1"}, headers=GP)
    assert valid(fhir_validator, outcome(bad, 400))["issue"][0]["expression"] == ["identifier"]


def test_a_search_by_identifier_is_recorded_as_each_referral_s_list_is(
    client: TestClient, referral: str
) -> None:
    write(client, "POST", "/DocumentReference", TEAM, identified(referral, "D-1"))
    before = accesses(client)
    assert search_ids(client, STRANGER, identifier=f"{DOCS}|D-1") == []
    search_ids(client, GP, identifier=f"{DOCS}|D-1")
    assert accesses(client)[len(before) :] == [("B81001", "attachment-list", None)]


@pytest.mark.parametrize("identifier", BAD_IDENTIFIERS)
def test_a_master_identifier_without_both_parts_or_with_more_is_refused(
    client: TestClient, fhir_validator: FhirValidator, referral: str, identifier: dict[str, Any]
) -> None:
    sent = {**identified(referral, "D-1"), "masterIdentifier": identifier}
    refused = outcome(write(client, "POST", "/DocumentReference", TEAM, sent), 422)
    assert valid(fhir_validator, refused)["issue"][0]["expression"] == [
        "DocumentReference.masterIdentifier"
    ]
    assert client.get(f"/referrals/{referral}/attachments", headers=GP).json() == []


def test_a_document_cannot_be_changed_so_neither_can_its_identifier(
    client: TestClient, referral: str
) -> None:
    made = write(client, "POST", "/DocumentReference", TEAM, identified(referral, "D-1")).json()
    changed = {**made, "masterIdentifier": {"system": DOCS, "value": "D-9"}}
    put = write(client, "PUT", f"/DocumentReference/{made['id']}", TEAM, changed, version=1)
    assert put.status_code in (404, 405), put.text
    again = client.get(f"{BASE}/DocumentReference/{made['id']}", headers=TEAM).json()
    assert again["masterIdentifier"] == {"system": DOCS, "value": "D-1"}
