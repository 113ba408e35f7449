"""Identity without an NHS number and the sharing basis: the rules of the aggregate, and the
API as the referrer and the receiving organisation meet them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from referrals.bootstrap import bootstrap
from referrals.config import Settings
from referrals.domain.caller import Caller, Role
from referrals.domain.errors import InvalidIdentifier, InvalidRequest
from referrals.domain.model import Referral
from referrals.domain.patient import LocalIdentifier, Patient
from referrals.domain.sharing import ConsentGiven
from referrals.entrypoints.api.app import create_app
from rx_contracts import (
    CohortFlags,
    NhsNumberVerification,
    Priority,
    ProviderType,
    ReferralNhsNumberRecorded,
    ServiceType,
    SharingBasis,
    decode,
)
from rx_contracts.topics import REFERRAL_EVENTS
from rx_messaging.tables import OutboxMessage
from sqlmodel import Session, create_engine, select

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
GP_CALLER = Caller("B81001", frozenset({Role.PROVIDER}), "G1234567")
V = NhsNumberVerification
BEST_INTERESTS = ConsentGiven(SharingBasis.BEST_INTERESTS)


def submit(
    patient: Patient,
    service_type: ServiceType = ServiceType.SOCIAL_CARE_ASSESSMENT,
    consent: ConsentGiven | None = BEST_INTERESTS,
) -> Referral:
    return Referral.submit(
        referral_id="r-1",
        caller=GP_CALLER,
        referrer_org="B81001",
        patient=patient,
        service_type=service_type,
        priority=Priority.ROUTINE,
        cohort=CohortFlags(),
        reason_code=None,
        reason_text=None,
        clinical_summary=None,
        now=NOW,
        consent=consent,
    )


# ---- the aggregate ---------------------------------------------------------------------------


def test_a_social_care_referral_needs_a_sharing_basis_and_records_who_and_when() -> None:
    with pytest.raises(InvalidRequest) as err:
        submit(Patient("BS5 0AA"), consent=None)
    assert (err.value.field, err.value.rule) == ("consent", "required_for_social_care")
    assert submit(Patient("BS5 0AA"), ServiceType.GP_REVIEW, consent=None).consent is None

    earlier = NOW - timedelta(hours=3)
    referral = submit(
        Patient("BS5 0AA"), consent=ConsentGiven(SharingBasis.SAFEGUARDING, None, earlier)
    )
    assert referral.consent is not None
    assert (
        referral.consent.basis,
        referral.consent.recorded_by_org,
        referral.consent.recorded_by_practitioner,
        referral.consent.recorded_at,
    ) == (SharingBasis.SAFEGUARDING, "B81001", "G1234567", earlier)
    event = referral.pending[0].event
    assert event is not None and event.sharing.consent_recorded
    assert "safeguarding" not in event.model_dump_json(), "events carry the flag, not the basis"


@pytest.mark.parametrize(
    ("recorded_at", "rule"),
    [(NOW + timedelta(hours=1), "in_future"), (datetime(2026, 11, 22, 8, 0), "timezone_required")],
)
def test_consent_cannot_be_recorded_in_the_future_or_without_a_zone(
    recorded_at: datetime, rule: str
) -> None:
    with pytest.raises(InvalidRequest) as err:
        submit(
            Patient("BS5 0AA"),
            consent=ConsentGiven(SharingBasis.EXPLICIT_CONSENT, None, recorded_at),
        )
    assert (err.value.field, err.value.rule) == ("consent.recorded_at", rule)


def test_a_person_without_an_nhs_number_is_absent_and_may_carry_a_local_identifier() -> None:
    local = LocalIdentifier(" SC-204817 ", "scb01")
    referral = submit(Patient("BS5 0AA", local_identifier=local))
    assert referral.patient.nhs_number_verification is V.ABSENT
    assert referral.patient.local_identifier == LocalIdentifier("SC-204817", "SCB01")
    assert submit(Patient("BS5 0AA", "9434765919")).patient.nhs_number_verification is V.UNVERIFIED


@pytest.mark.parametrize(
    ("patient", "field", "rule"),
    [
        (
            Patient("BS5 0AA", nhs_number_verification=V.VERIFIED),
            "patient.nhs_number_verification",
            "nhs_number_required",
        ),
        (
            Patient("BS5 0AA", "9434765919", nhs_number_verification=V.ABSENT),
            "patient.nhs_number_verification",
            "absent_with_number",
        ),
        (
            Patient("BS5 0AA", local_identifier=LocalIdentifier("SC-1", "??")),
            "patient.local_identifier.organisation",
            "ods_code",
        ),
        (
            Patient("BS5 0AA", local_identifier=LocalIdentifier("  ", "SCB01")),
            "patient.local_identifier.value",
            "local_identifier_format",
        ),
    ],
    ids=["verified-without-number", "absent-with-number", "bad-issuer", "blank-local-id"],
)
def test_contradictory_identity_is_refused_naming_the_field(
    patient: Patient, field: str, rule: str
) -> None:
    with pytest.raises(InvalidIdentifier) as err:
        submit(patient)
    assert (err.value.field, err.value.rule) == (field, rule)


def test_an_nhs_number_added_later_is_its_own_event_without_the_number() -> None:
    referral = submit(Patient("BS5 0AA", local_identifier=LocalIdentifier("SC-1", "SCB01")))
    referral.pending.clear()
    referral.record_nhs_number(GP_CALLER, 1, NOW, "943 476 5919", V.VERIFIED)
    [step] = referral.pending
    assert isinstance(step.event, ReferralNhsNumberRecorded)
    assert (step.event.previous_verification, step.event.verification) == (V.ABSENT, V.VERIFIED)
    assert (step.action, step.reason_code, referral.version) == ("record-nhs-number", "verified", 2)
    assert "9434765919" not in step.event.model_dump_json()
    assert (referral.patient.nhs_number, referral.patient.local_identifier) == (
        "9434765919",
        LocalIdentifier("SC-1", "SCB01"),
    ), "the local identifier stays beside the number"
    with pytest.raises(InvalidRequest, match="recorded already"):
        referral.record_nhs_number(GP_CALLER, 2, NOW, "9434765919", V.VERIFIED)
    with pytest.raises(InvalidRequest) as err:
        referral.amend(GP_CALLER, 2, NOW, patient={"nhs_number": "4010232137"})
    assert err.value.rule == "use_record_nhs_number"


def test_a_data_opt_out_is_flagged_on_every_event_of_the_referral() -> None:
    referral = submit(Patient("BS5 0AA", national_data_opt_out=True))
    referral.record_routing("SCB01", ProviderType.SOCIAL_CARE, NOW, "ev-1")
    referral.accept(Caller("SCB01", frozenset({Role.PROVIDER})), 2, NOW)
    events = [step.event for step in referral.pending if step.event is not None]
    assert len(events) == 2 and all(e.sharing.data_opt_out for e in events)


def test_sending_on_to_social_care_needs_a_basis_which_the_referrer_can_add() -> None:
    referral = submit(Patient("BS5 0AA"), ServiceType.URGENT_COMMUNITY_RESPONSE, consent=None)
    referral.record_routing("RXA01", ProviderType.RAPID_RESPONSE, NOW, "ev-1")
    team = Caller("RXA01", frozenset({Role.PROVIDER}))
    with pytest.raises(InvalidRequest) as err:
        referral.redirect(team, 2, NOW, ProviderType.SOCIAL_CARE, None, "needs care")
    assert err.value.field == "consent"
    referral.amend(GP_CALLER, 2, NOW, consent=ConsentGiven(SharingBasis.EXPLICIT_CONSENT))
    referral.redirect(team, 3, NOW, ProviderType.SOCIAL_CARE, None, "needs care")
    assert referral.pending[-1].event.sharing.consent_recorded  # type: ignore[union-attr]


# ---- the API -----------------------------------------------------------------------------------

GP = {"X-Organisation": "B81001", "X-Roles": "provider", "X-Practitioner": "G1234567"}
SOCIAL_CARE = {"X-Organisation": "SCB01", "X-Roles": "provider"}
BODY: dict[str, Any] = {
    "referrer": {"organisation": "B81001", "practitioner": "G1234567"},
    "patient": {
        "name": "Sam Jones",
        "postcode": "BS5 0AA",
        "local_identifier": {"value": "SC-204817", "organisation": "SCB01"},
    },
    "service_type": "social-care-assessment",
    "consent": {"basis": "explicit-consent", "recorded_at": "2026-11-22T08:30:00+00:00"},
}


@pytest.fixture
def db_url(database_url: str) -> str:
    return database_url


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        yield c


def post(
    client: TestClient, path: str, who: dict[str, str], body: Any, version: int | None = None
) -> Response:
    headers = {**who, "Idempotency-Key": str(uuid.uuid4())}
    if version is not None:
        headers["If-Match"] = f'"{version}"'
    return client.post(path, json=body, headers=headers)


def outbox(db_url: str) -> list[tuple[str, dict[str, Any], bytes]]:
    engine = create_engine(db_url)
    try:
        with Session(engine) as s:
            query = select(OutboxMessage).where(OutboxMessage.topic == REFERRAL_EVENTS)
            found = []
            for row in s.exec(query.order_by(OutboxMessage.id)).all():
                headers = [(name, value.encode()) for name, value in row.headers]
                envelope = decode(row.key, row.value, headers)
                found.append((envelope.type.split(".")[2], envelope.data, row.value))
            return found
    finally:
        engine.dispose()


def test_a_social_care_referral_without_consent_is_a_problem_naming_the_field(
    client: TestClient,
) -> None:
    body = {k: v for k, v in BODY.items() if k != "consent"}
    response = post(client, "/referrals", GP, body)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    [error] = response.json()["errors"]
    assert (error["field"], error["rule"]) == ("consent", "required_for_social_care")


def test_without_an_nhs_number_with_consent_then_the_number_traced_later(
    client: TestClient, db_url: str
) -> None:
    created = post(client, "/referrals", GP, BODY)
    assert created.status_code == 201, created.text
    referral = created.json()
    assert referral["patient"]["nhs_number"] is None
    assert referral["patient"]["nhs_number_verification"] == "absent"
    assert referral["patient"]["local_identifier"] == {
        "value": "SC-204817",
        "organisation": "SCB01",
    }
    assert referral["consent"] == {
        "basis": "explicit-consent",
        "recorded_by_org": "B81001",
        "recorded_by_practitioner": "G1234567",
        "recorded_at": "2026-11-22T08:30:00Z",
    }
    rid = referral["id"]
    with bootstrap(Settings(database_url=db_url)).uow() as uow:
        stored = uow.referrals.get(rid)
        assert stored is not None
        stored.record_routing("SCB01", ProviderType.SOCIAL_CARE, datetime.now(UTC), "ev-1")
        uow.commit()
    shown = client.get(f"/referrals/{rid}", headers=SOCIAL_CARE).json()
    assert shown["consent"]["basis"] == "explicit-consent", "the receiving organisation sees it"

    traced = post(
        client,
        f"/referrals/{rid}/record-nhs-number",
        GP,
        {"nhs_number": "943 476 5919", "verification": "verified"},
        version=2,
    )
    assert traced.status_code == 200, traced.text
    assert traced.headers["etag"] == '"3"'
    patient = traced.json()["patient"]
    assert (patient["nhs_number"], patient["nhs_number_verification"]) == ("9434765919", "verified")
    stranger = {"X-Organisation": "L81002", "X-Roles": "provider"}
    unseen = post(
        client,
        f"/referrals/{rid}/record-nhs-number",
        stranger,
        {"nhs_number": "4010232137", "verification": "verified"},
        version=3,
    )
    assert unseen.status_code == 404
    # Social care, holding the referral, traces the person to another number: allowed, and
    # its own event names social care as the one who recorded it.
    retraced = post(
        client,
        f"/referrals/{rid}/record-nhs-number",
        SOCIAL_CARE,
        {"nhs_number": "4010232137", "verification": "verified"},
        version=3,
    )
    assert retraced.status_code == 200, retraced.text
    assert retraced.json()["patient"]["nhs_number"] == "4010232137"

    history = client.get(f"/referrals/{rid}/history", headers=GP).json()
    assert [(h["action"], h["actor_org"]) for h in history][-2:] == [
        ("record-nhs-number", "B81001"),
        ("record-nhs-number", "SCB01"),
    ]
    events = outbox(db_url)
    assert [name for name, _, _ in events] == [
        "ReferralSubmitted",
        "ReferralNhsNumberRecorded",
        "ReferralNhsNumberRecorded",
    ]
    submitted, recorded, by_social_care = (e[1] for e in events)
    assert submitted["sharing"] == {"consent_recorded": True, "data_opt_out": False}
    assert (recorded["previous_verification"], recorded["verification"]) == ("absent", "verified")
    assert (recorded["actor"]["organisation"], by_social_care["actor"]["organisation"]) == (
        "B81001",
        "SCB01",
    )
    raw = b"".join(value for _, _, value in events)
    for private in (b"9434765919", b"4010232137", b"SC-204817", b"explicit-consent", b"Sam Jones"):
        assert private not in raw, "events carry flags, never identifiers or the basis"
    assert json.loads(events[1][2])["sharing"]["consent_recorded"] is True


def test_a_data_opt_out_recorded_by_amendment_is_flagged_on_its_event(
    client: TestClient, db_url: str
) -> None:
    body = {**BODY, "service_type": "gp-review"}
    del body["consent"]
    rid = post(client, "/referrals", GP, body).json()["id"]
    refused = post(
        client, f"/referrals/{rid}/amend", GP, {"patient": {"national_data_opt_out": None}}, 1
    )
    assert refused.status_code == 422
    amended = post(
        client, f"/referrals/{rid}/amend", GP, {"patient": {"national_data_opt_out": True}}, 1
    )
    assert amended.status_code == 200, amended.text
    assert amended.json()["patient"]["national_data_opt_out"] is True
    [(_, submitted, _), (name, changed, _)] = outbox(db_url)
    assert (submitted["sharing"]["data_opt_out"], name) == (False, "ReferralAmended")
    assert changed["sharing"] == {"consent_recorded": False, "data_opt_out": True}
