"""Everything the notify service emits as FHIR passes the HAPI FHIR validator against base R4:
the Subscription resource, notification Bundles (handshake, heartbeat, events with each
payload content), $status and $events answers, and OperationOutcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from devstack.fhir_validator import FhirValidator
from fastapi.testclient import TestClient
from notify.adapters.fhir import notification_bundle
from notify.adapters.notifications import NotificationType
from notify.domain.subscription import Content
from notify.service_layer import handlers
from notify.service_layer.ingest import ingest
from rx_contracts import new_id
from sqlmodel import Session

from .journeys import TEAM, Journey
from .test_api import FHIR_SUBSCRIPTION, client, org  # noqa: F401  (the API fixture)

BASE = "http://127.0.0.1:8005/fhir/R4"
REFERRALS = "http://127.0.0.1:8001/fhir/R4"


def without_profiles(value: Any) -> Any:
    """The resource without its ``meta.profile`` claims: the validator holds base R4, not the
    Backport IG's package, and refuses to judge profiles it cannot load."""
    if isinstance(value, dict):
        found = {k: without_profiles(v) for k, v in value.items()}
        if isinstance(found.get("meta"), dict):
            found["meta"] = {k: v for k, v in found["meta"].items() if k != "profile"}
            if not found["meta"]:
                del found["meta"]
        return found
    if isinstance(value, list):
        return [without_profiles(v) for v in value]
    return value


def valid(validator: FhirValidator, resource: dict[str, Any]) -> dict[str, Any]:
    errors = validator.errors(without_profiles(resource))
    assert not errors, f"{resource.get('resourceType')}: {errors}"
    return resource


def test_subscriptions_notifications_and_answers_are_valid_r4(
    client: TestClient,  # noqa: F811
    fhir_validator: FhirValidator,
) -> None:
    created = client.post("/fhir/R4/Subscription", json=FHIR_SUBSCRIPTION, headers=org(TEAM))
    sid = valid(fhir_validator, created.json())["id"]
    valid(fhir_validator, client.get(f"/fhir/R4/Subscription/{sid}", headers=org(TEAM)).json())
    valid(fhir_validator, client.get("/fhir/R4/Subscription", headers=org(TEAM)).json())
    status = client.get(f"/fhir/R4/Subscription/{sid}/$status", headers=org(TEAM)).json()
    valid(fhir_validator, status)

    j = Journey()
    engine = client.app.state.container.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        for envelope in (j.submitted(), j.routed(TEAM), j.accepted(), j.rejected()):
            ingest(session, envelope)
        session.commit()
    events = client.get(
        f"/fhir/R4/Subscription/{sid}/$events", params={"eventsSinceNumber": 1}, headers=org(TEAM)
    ).json()
    valid(fhir_validator, events)

    subscription, found = handlers.events(sid, _caller(), _uow(client))
    now = datetime.now(UTC)
    for kind in (NotificationType.HANDSHAKE, NotificationType.HEARTBEAT):
        valid(
            fhir_validator,
            notification_bundle(subscription, kind, [], BASE, REFERRALS, now, new_id()),
        )
    for content in Content:
        subscription.content = content
        bundle = notification_bundle(
            subscription, NotificationType.EVENT, found, BASE, REFERRALS, now, found[0].message_id
        )
        valid(fhir_validator, bundle)

    missing = client.get("/fhir/R4/Subscription/nope", headers=org(TEAM)).json()
    valid(fhir_validator, missing)


def _caller() -> Any:
    from notify.domain.caller import Caller
    from rx_contracts import Role

    return Caller(TEAM, frozenset({Role.PROVIDER}))


def _uow(test_client: TestClient) -> Any:
    return test_client.app.state.container.uow()  # type: ignore[attr-defined]


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
