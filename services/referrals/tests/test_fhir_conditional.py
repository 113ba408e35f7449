"""Conditional create: a ServiceRequest by the referrer's identifier, a DocumentReference by the
uploader's (``If-None-Exist: identifier=system|value``); every other create that asks for one (``If-None-Exist``, or a
transaction entry's ``request.ifNoneExist``) is refused with 412 and an OperationOutcome, as
FHIR R4 has a server without conditional create answer, and nothing is stored; the
Idempotency-Key is what makes a retry safe."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from devstack.fhir_validator import FhirValidator
from fastapi.testclient import TestClient
from httpx import Response
from referrals.adapters.ledger import IDENTIFIER_LOCKS
from referrals.adapters.tables import AttachmentRow
from referrals.config import Settings
from referrals.domain.caller import Caller, Role
from referrals.domain.identifiers import Identifier
from referrals.entrypoints.api.app import create_app
from referrals.entrypoints.fhir import commands, inbound
from referrals.entrypoints.fhir.deps import parse
from referrals.service_layer import handlers, versions
from rx_contracts.topics import REFERRAL_EVENTS
from sqlalchemy import text
from sqlmodel import Session, select

from .fhir_support import (
    BAD_IDENTIFIERS,
    BASE,
    GP,
    ODS,
    PATIENT,
    SERVICE_REQUEST,
    STRANGER,
    TEAM,
    contained_service_request,
    create,
    message,
    outcome,
    route,
    transaction_bundle,
)
from .test_fhir import topics, valid

CONDITION = "identifier=https://gp-system.example/referrals|R-1"


def _communication(rid: str) -> dict[str, Any]:
    return {
        "resourceType": "Communication",
        "basedOn": [{"reference": f"ServiceRequest/{rid}"}],
        "status": "completed",
        "category": [
            {
                "coding": [
                    {
                        "system": "https://referral-exchange.example/fhir/CodeSystem/"
                        "communication-category",
                        "code": "message",
                    }
                ]
            }
        ],
        "payload": [{"contentString": "Key safe code 4512"}],
    }


def _document(rid: str) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "data": base64.b64encode(b"Key safe code 4512").decode(),
                    "title": "letter.txt",
                }
            }
        ],
        "context": {"related": [{"reference": f"ServiceRequest/{rid}"}]},
    }


# Each create: its path, who sends it, its body (given a routed referral), the status it gets.
CREATES: dict[str, tuple[str, dict[str, str], Callable[[str], Any], int]] = {
    "transaction": ("/", GP, lambda rid: transaction_bundle(), 200),
    "message": (
        "/$process-message",
        GP,
        lambda rid: message("new", dict(SERVICE_REQUEST), dict(PATIENT)),
        200,
    ),
    "Communication": ("/Communication", TEAM, _communication, 201),
}


def _post(client: TestClient, kind: str, rid: str, key: str, **more: str) -> Response:
    path, who, body, _ = CREATES[kind]
    headers = {**who, "Idempotency-Key": key, "Content-Type": "application/fhir+json", **more}
    if kind == "Communication":  # a Communication names the referral's version
        read = client.get(f"{BASE}/ServiceRequest/{rid}", headers=who)
        headers["If-Match"] = read.headers["etag"]
    return client.post(f"{BASE}{path}", json=body(rid), headers=headers)


@pytest.fixture
def routed(client: TestClient, db_url: str) -> str:
    """A referral routed to RXA01."""
    rid = create(client)
    route(db_url, rid)
    return rid


def _stored(client: TestClient, db_url: str) -> tuple[Any, ...]:
    """What a create could have stored: referral events staged, attachments."""
    engine = client.app.state.container.engine  # type: ignore[attr-defined]
    with Session(engine) as s:
        attachments = tuple(s.exec(select(AttachmentRow.id)))
    events = tuple(t for t in topics(db_url) if t[0] == REFERRAL_EVENTS)
    return events, attachments


@pytest.mark.parametrize("kind", CREATES)
def test_a_conditional_create_is_refused_with_412_and_nothing_is_stored(
    client: TestClient, db_url: str, fhir_validator: FhirValidator, kind: str
) -> None:
    rid = create(client)
    route(db_url, rid)
    created = CREATES[kind][3]
    before = _stored(client, db_url)
    key = str(uuid.uuid4())

    refused = _post(client, kind, rid, key, **{"If-None-Exist": CONDITION})
    answer = valid(fhir_validator, outcome(refused, 412))
    [issue] = answer["issue"]
    assert issue["code"] == "not-supported"
    assert issue["expression"] == ["If-None-Exist"]
    assert "not supported" in issue["diagnostics"]
    assert "Idempotency-Key" in issue["diagnostics"]
    assert _stored(client, db_url) == before, "nothing stored, no event staged"

    # The key was not spent on the refusal: the same request without the header is made once.
    made = _post(client, kind, rid, key)
    assert made.status_code == created, made.text
    assert "idempotent-replayed" not in made.headers
    assert _stored(client, db_url) != before


def test_a_transaction_entry_asking_for_a_conditional_create_is_refused(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    bundle = transaction_bundle()
    bundle["entry"][0]["request"]["ifNoneExist"] = (
        "identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"
    )
    headers = {**GP, "Idempotency-Key": str(uuid.uuid4())}
    answer = valid(
        fhir_validator, outcome(client.post(f"{BASE}/", json=bundle, headers=headers), 412)
    )
    [issue] = answer["issue"]
    assert issue["code"] == "not-supported"
    assert issue["expression"] == ["Bundle.entry[0].request.ifNoneExist"]
    assert topics(db_url) == []


def test_the_capability_statement_says_which_creates_are_conditional(
    client: TestClient,
) -> None:
    statement = client.get(f"{BASE}/metadata").json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {kind for kind, r in resources.items() if r["conditionalCreate"]} == {
        "ServiceRequest",
        "DocumentReference",
    }
    for kind in ("ServiceRequest", "DocumentReference"):
        assert "identifier" in {p["name"] for p in resources[kind]["searchParam"]}
    assert "If-None-Exist" in statement["rest"][0]["documentation"]


# ---- the referrer's identifier, and conditional create by it --------------------------------

SYSTEM = "https://gp-system.example/referrals"


def identified(value: str, referrer: str = "B81001") -> dict[str, Any]:
    """A ServiceRequest carrying the referrer's identifier ``value``."""
    body = {**contained_service_request(), "identifier": [{"system": SYSTEM, "value": value}]}
    body["requester"] = {"type": "Organization", "identifier": {"system": ODS, "value": referrer}}
    return body


def post_create(
    client: TestClient,
    kind: str,
    body: dict[str, Any],
    who: dict[str, str],
    condition: str | None = None,
    key: str | None = None,
) -> Response:
    """POST a ``kind`` resource, with an If-None-Exist ``condition`` if one is given."""
    headers = {**who, "Idempotency-Key": key or str(uuid.uuid4())}
    if condition is not None:
        headers["If-None-Exist"] = condition
    return client.post(f"{BASE}/{kind}", json=body, headers=headers)


def post_sr(
    client: TestClient, body: dict[str, Any], who: dict[str, str] = GP, **more: Any
) -> Response:
    return post_create(client, "ServiceRequest", body, who, **more)


def submitted(db_url: str) -> int:
    return sum(1 for t in topics(db_url) if t[1].endswith("ReferralSubmitted.v1"))


def search(client: TestClient, who: dict[str, str], token: str) -> list[str]:
    found = client.get(f"{BASE}/ServiceRequest", params={"identifier": token}, headers=who)
    assert found.status_code == 200, found.text
    return [e["resource"]["id"] for e in found.json().get("entry", [])]


def test_the_referrer_s_identifier_is_kept_read_back_searchable_and_never_changes(
    client: TestClient, fhir_validator: FhirValidator
) -> None:
    made = post_sr(client, identified("R-1"))
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    read = client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP)
    sr = valid(fhir_validator, read.json())
    assert sr["identifier"] == [{"system": SYSTEM, "value": "R-1"}]
    assert made.json()["identifier"] == sr["identifier"]
    bundled = client.post(
        f"{BASE}/",
        json=transaction_bundle(identifier=[{"system": SYSTEM, "value": "R-3"}]),
        headers={**GP, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert bundled.json()["entry"][1]["resource"]["identifier"][0]["value"] == "R-3"

    assert search(client, GP, f"{SYSTEM}|R-1") == [rid]
    assert search(client, GP, f"{SYSTEM}|R-2") == []
    assert search(client, GP, "https://elsewhere.example|R-1") == []
    assert search(client, STRANGER, f"{SYSTEM}|R-1") == [], "only what the caller may see"
    bad = client.get(f"{BASE}/ServiceRequest", params={"identifier": "R-1"}, headers=GP)
    assert valid(fhir_validator, outcome(bad, 400))["issue"][0]["expression"] == ["identifier"]

    # An amendment keeps it (older versions too); a change of it is refused.
    amended = {**sr, "priority": "stat"}
    put = client.put(
        f"{BASE}/ServiceRequest/{rid}",
        json=amended,
        headers={**GP, "If-Match": read.headers["etag"], "Idempotency-Key": str(uuid.uuid4())},
    )
    assert put.status_code == 200, put.text
    assert put.json()["identifier"] == sr["identifier"]
    old = client.get(f"{BASE}/ServiceRequest/{rid}/_history/1", headers=GP).json()
    assert old["identifier"] == sr["identifier"]
    changed = {**put.json(), "identifier": [{"system": SYSTEM, "value": "R-9"}]}
    refused = client.put(
        f"{BASE}/ServiceRequest/{rid}",
        json=changed,
        headers={**GP, "If-Match": put.headers["etag"], "Idempotency-Key": str(uuid.uuid4())},
    )
    assert valid(fhir_validator, outcome(refused, 422))["issue"][0]["expression"] == [
        "ServiceRequest.identifier"
    ]


@pytest.mark.parametrize("identifier", BAD_IDENTIFIERS)
def test_an_identifier_without_both_parts_or_with_more_is_refused(
    client: TestClient, db_url: str, identifier: dict[str, Any]
) -> None:
    body = {**contained_service_request(), "identifier": [identifier]}
    answer = outcome(post_sr(client, body), 422)
    assert answer["issue"][0]["expression"] == ["ServiceRequest.identifier[0]"]
    assert submitted(db_url) == 0


def test_a_conditional_create_by_identifier_creates_once_then_answers_with_that_referral(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    condition = f"identifier={SYSTEM}|R-1"
    first = post_sr(client, identified("R-1"), condition=condition)
    assert first.status_code == 201, first.text
    rid = valid(fhir_validator, first.json())["id"]
    assert first.headers["etag"] == 'W/"1"'

    # Sent again (a new key: the sender lost the first answer and its key): no second referral.
    again = post_sr(client, identified("R-1"), condition=condition)
    assert again.status_code == 200, again.text
    assert again.json() == client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP).json()
    assert again.headers["location"].endswith(f"/ServiceRequest/{rid}/_history/1")
    assert submitted(db_url) == 1, "nothing stored, no ReferralSubmitted"
    assert search(client, GP, f"{SYSTEM}|R-1") == [rid]

    # Another identifier, or another referrer's referral with the same one, is no match.
    other = post_sr(client, identified("R-2"), condition=f"identifier={SYSTEM}|R-2")
    assert other.status_code == 201, other.text
    theirs = post_sr(client, identified("R-1", "L81002"), STRANGER, condition=condition)
    assert theirs.status_code == 201, theirs.text
    assert submitted(db_url) == 3


def test_a_conditional_create_matching_several_is_412_and_stores_nothing(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    for _ in range(2):  # without the condition nothing stops a second referral with it
        assert post_sr(client, identified("R-1")).status_code == 201
    refused = post_sr(client, identified("R-1"), condition=f"identifier={SYSTEM}|R-1")
    issue = valid(fhir_validator, outcome(refused, 412))["issue"][0]
    assert issue["expression"] == ["If-None-Exist"]
    assert submitted(db_url) == 2


@pytest.mark.parametrize("kind", ["ServiceRequest", "DocumentReference"])
@pytest.mark.parametrize(
    "condition",
    [
        "status=active",
        "identifier=R-1",
        f"identifier={SYSTEM}|R-1&status=active",
        f"identifier={SYSTEM}|R-2",  # not the resource's own identifier
        "",
    ],
)
def test_other_conditions_are_400_and_store_nothing(
    client: TestClient,
    db_url: str,
    fhir_validator: FhirValidator,
    routed: str,
    kind: str,
    condition: str,
) -> None:
    rid = routed
    before = _stored(client, db_url)
    if kind == "ServiceRequest":
        refused = post_sr(client, identified("R-1"), condition=condition)
    else:
        document = {**_document(rid), "masterIdentifier": {"system": SYSTEM, "value": "R-1"}}
        refused = post_doc(client, document, condition=condition)
    issue = valid(fhir_validator, outcome(refused, 400))["issue"][0]
    assert issue["expression"] == ["If-None-Exist"]
    assert _stored(client, db_url) == before


@pytest.mark.parametrize("kind", ["ServiceRequest", "DocumentReference"])
def test_conditional_create_and_search_by_identifier_on_both_databases(
    database_url: str, kind: str
) -> None:
    with TestClient(create_app(Settings(database_url=database_url))) as client:
        rid = create(client)
        route(database_url, rid)
        if kind == "ServiceRequest":
            body, who, token = identified("R-1"), GP, f"{SYSTEM}|R-1"
        else:
            body, who, token = _identified_document(rid), TEAM, f"{DOCS}|D-1"
        first = post_create(client, kind, body, who, condition=f"identifier={token}")
        assert first.status_code == 201, first.text
        again = post_create(client, kind, body, who, condition=f"identifier={token}")
        assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
        found = client.get(f"{BASE}/{kind}", params={"identifier": token}, headers=GP)
        assert [e["resource"]["id"] for e in found.json()["entry"]] == [first.json()["id"]]


@pytest.mark.parametrize("kind", ["ServiceRequest", "DocumentReference"])
def test_two_conditional_creates_at_once_make_one_on_postgresql(
    database_url: str, kind: str
) -> None:
    """The second waits for the lock the first holds (a referrer's identifier's; for a
    document, its referral's row), then finds what the first made."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's writing transaction holds the whole database")
    with TestClient(create_app(Settings(database_url=database_url))) as client:
        rid = create(client)
        route(database_url, rid)
        container = client.app.state.container  # type: ignore[attr-defined]
        waiting, found = (
            _race(container) if kind == "ServiceRequest" else _upload_race(container, rid)
        )
    assert waiting, "the second create waited for the first"
    assert found == [1], "and then found what the first made"


def _race(container: Any) -> tuple[bool, list[int]]:
    caller = Caller("B81001", frozenset({Role.PROVIDER}), "G1234567")
    cmd = commands.submit(parse(inbound.ServiceRequest, identified("R-1"), "ServiceRequest"), None)
    return race(
        container,
        lambda uow: len(versions.referrals_with_identifier(SYSTEM, "R-1", caller, uow)),
        lambda uow: handlers.submit_referral(cmd, caller, uow),
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        f"AND classid = {IDENTIFIER_LOCKS}",
    )


def race(
    container: Any, look: Callable[[Any], int], make: Callable[[Any], object], waits: str
) -> tuple[bool, list[int]]:
    """Two conditional creates at once: the first looks (``look`` finds none) and holds its
    transaction open; the second looks too; once the second waits (``waits`` counts it; it
    never would without a lock), the first makes (``make``) and commits. Whether the second
    waited, and what it then found."""
    found: list[int] = []

    def second() -> None:
        with container.uow() as uow:
            found.append(look(uow))
            uow.commit()

    with container.uow() as first:
        assert look(first) == 0
        racing = threading.Thread(target=second)
        racing.start()
        waiting = False
        for _ in range(200):  # until the second waits
            with container.engine.connect() as conn:
                waiting = bool(conn.execute(text(waits)).scalar())
            if waiting:
                break
            time.sleep(0.05)
        make(first)
        first.commit()
    racing.join()
    return waiting, found


# ---- the uploader's identifier for a document, and conditional upload by it -----------------

DOCS = "https://gp-system.example/documents"
DOC_CONDITION = f"identifier={DOCS}|D-1"


def _identified_document(rid: str, value: str = "D-1") -> dict[str, Any]:
    return {**_document(rid), "masterIdentifier": {"system": DOCS, "value": value}}


def post_doc(
    client: TestClient, body: dict[str, Any], who: dict[str, str] = TEAM, **more: Any
) -> Response:
    return post_create(client, "DocumentReference", body, who, **more)


def test_a_conditional_upload_stores_once_then_answers_with_that_document(
    client: TestClient, db_url: str, fhir_validator: FhirValidator, routed: str
) -> None:
    rid = routed
    first = post_doc(client, _identified_document(rid), condition=DOC_CONDITION)
    assert first.status_code == 201, first.text
    made = valid(fhir_validator, first.json())
    assert made["masterIdentifier"] == {"system": DOCS, "value": "D-1"}
    stored = _stored(client, db_url)

    # Sent again (a new key: the sender lost the first answer and its key): no second document.
    again = post_doc(client, _identified_document(rid), condition=DOC_CONDITION)
    assert again.status_code == 200, again.text
    assert valid(fhir_validator, again.json()) == made
    assert again.json() == client.get(f"{BASE}/DocumentReference/{made['id']}", headers=GP).json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["etag"] == 'W/"1"'
    assert _stored(client, db_url) == stored, "nothing stored: no attachment, no Binary, no event"
    # The same request with the same key is answered as the first time.
    key = str(uuid.uuid4())
    once = post_doc(client, _identified_document(rid), condition=DOC_CONDITION, key=key)
    replayed = post_doc(client, _identified_document(rid), condition=DOC_CONDITION, key=key)
    assert (once.status_code, replayed.status_code) == (200, 200)
    assert replayed.headers.get("idempotent-replayed") == "true"

    # Another identifier, another organisation's upload, another referral: no match.
    other = post_doc(client, _identified_document(rid, "D-2"), condition=f"identifier={DOCS}|D-2")
    assert other.status_code == 201, other.text
    referrer = post_doc(client, _identified_document(rid), GP, condition=DOC_CONDITION)
    assert referrer.status_code == 201, referrer.text
    second = create(client)
    route(db_url, second)
    elsewhere = post_doc(client, _identified_document(second), condition=DOC_CONDITION)
    assert elsewhere.status_code == 201, elsewhere.text
    _, attachments = _stored(client, db_url)
    assert len(attachments) == 4


def test_a_conditional_upload_matching_several_is_412_and_stores_nothing(
    client: TestClient, db_url: str, fhir_validator: FhirValidator, routed: str
) -> None:
    rid = routed
    for _ in range(2):  # without the condition nothing stops a second document with it
        assert post_doc(client, _identified_document(rid)).status_code == 201
    before = _stored(client, db_url)
    refused = post_doc(client, _identified_document(rid), condition=DOC_CONDITION)
    issue = valid(fhir_validator, outcome(refused, 412))["issue"][0]
    assert issue["expression"] == ["If-None-Exist"]
    assert issue["code"] != "not-supported"
    assert _stored(client, db_url) == before


def test_a_retried_conditional_upload_finds_its_document_after_the_referral_ended(
    client: TestClient, db_url: str, routed: str
) -> None:
    first = post_doc(client, _identified_document(routed), condition=DOC_CONDITION)
    assert first.status_code == 201, first.text
    version = client.get(f"/referrals/{routed}", headers=GP).headers["etag"]
    cancel = client.post(
        f"/referrals/{routed}/cancel",
        json={"reason_text": "no longer needed"},
        headers={**GP, "Idempotency-Key": str(uuid.uuid4()), "If-Match": version},
    )
    assert cancel.status_code == 200, cancel.text
    again = post_doc(client, _identified_document(routed), condition=DOC_CONDITION)
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    late = post_doc(client, _identified_document(routed, "D-2"), condition=f"identifier={DOCS}|D-2")
    assert late.status_code == 409, "a new document still needs an open referral"


def test_a_conditional_upload_of_a_document_without_an_identifier_is_400(
    client: TestClient, db_url: str, fhir_validator: FhirValidator, routed: str
) -> None:
    rid = routed
    refused = post_doc(client, _document(rid), condition=DOC_CONDITION)
    assert valid(fhir_validator, outcome(refused, 400))["issue"][0]["expression"] == [
        "If-None-Exist"
    ]
    assert _stored(client, db_url)[1] == ()


def _upload_race(container: Any, rid: str) -> tuple[bool, list[int]]:
    caller = Caller("RXA01", frozenset({Role.PROVIDER}))
    wanted = Identifier(DOCS, "D-1")
    return race(
        container,
        lambda uow: len(handlers.uploaded_with_identifier(rid, wanted, caller, uow)),
        lambda uow: handlers.add_attachment(
            rid, caller, "text/plain", "a.txt", b"letter", uow, wanted
        ),
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND datname = current_database()",
    )
