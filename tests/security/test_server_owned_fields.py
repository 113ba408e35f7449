"""Callers cannot set what the server owns: for every route of every service that takes a JSON
body (found from the route table, so new ones are covered), each server-owned field the body
does not declare is refused with 422 naming it. And the one caller-named
organisation (the referrer) must be the caller's own."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from issuer.testing import TestIssuer

from .conftest import SERVICES
from .routes import RouteInfo, json_body_schema, request_shape, routes_of

SERVER_OWNED = (
    "id",
    "status",
    "version",
    "sequence",
    "assigned_org",
    "assigned_provider_type",
    "referrer_org",
    "created_at",
    "updated_at",
    "due_at",
    "allowed_actions",
    "uploaded_by",
    "actor_org",
)
"""Fields the services set themselves (ReferralPublic, history, attachments)."""


def json_routes() -> list[tuple[RouteInfo, dict[str, object]]]:
    found = []
    for service, factory in SERVICES.items():
        app = factory("sqlite://")
        for info in routes_of(service, app)[0]:
            schema = json_body_schema(app, info)
            if schema is not None:
                found.append((info, schema))
    return found


ROUTES = json_routes()


def test_the_generator_finds_the_bodies_we_know() -> None:
    keys = {info.key for info, _ in ROUTES}
    assert "referrals POST /referrals" in keys
    assert "referrals POST /referrals/{referral_id}/amend" in keys


@pytest.mark.parametrize(("info", "schema"), ROUTES, ids=lambda v: getattr(v, "key", ""))
def test_server_owned_fields_are_refused(
    info: RouteInfo,
    schema: dict[str, object],
    service_client: Callable[[str], TestClient],
    issuer: TestIssuer,
) -> None:
    client = service_client(info.service)
    app: FastAPI = client.app  # type: ignore[assignment]
    declared = set(schema.get("properties") or {})  # type: ignore[call-overload]
    # A caller holding every role the route could want: only the body decides the answer.
    caller = "admin" if info.required_roles and "admin" in info.required_roles else "b81001"
    if info.required_roles and "ops" in info.required_roles:
        caller = "ops"
    base = request_shape(app, info).json or {}
    path = info.path.format(**dict.fromkeys(info.path_params, str(uuid.uuid4())))
    for name in SERVER_OWNED:
        if name in declared:
            continue
        response = client.request(
            info.method,
            path,
            json={**base, name: "set-by-caller"},
            headers=issuer.headers(
                caller,
                info.service,
                **{"Idempotency-Key": str(uuid.uuid4()), "If-Match": '"1"'},
            ),
        )
        assert response.status_code == 422, f"{info.key} accepted {name}: {response.text[:200]}"
        if info.path.startswith("/fhir/"):  # FHIR routes answer with an OperationOutcome
            [issue] = response.json()["issue"]
            assert issue["expression"] == [name], issue
            continue
        errors = response.json()["errors"]
        assert {"field": name, "rule": "extra_forbidden"} in [
            {"field": e["field"], "rule": e["rule"]} for e in errors
        ], errors


def test_a_new_referral_is_submitted_with_server_set_status_and_no_assignee(
    service_client: Callable[[str], TestClient], issuer: TestIssuer
) -> None:
    client = service_client("referrals")
    body = request_shape(
        client.app,  # type: ignore[arg-type]
        next(info for info, _ in ROUTES if info.key == "referrals POST /referrals"),
    ).json
    created = client.post(
        "/referrals",
        json=body,
        headers=issuer.headers("b81001", "referrals", **{"Idempotency-Key": str(uuid.uuid4())}),
    ).json()
    assert (created["status"], created["version"], created["assigned_org"]) == (
        "submitted",
        1,
        None,
    )
    assert created["referrer_org"] == "B81001"


def test_the_referrer_named_in_the_body_must_be_the_callers_organisation(
    service_client: Callable[[str], TestClient], issuer: TestIssuer
) -> None:
    client = service_client("referrals")
    body = {
        "referrer": {"organisation": "L81001"},
        "patient": {"postcode": "BS5 0AA"},
        "service_type": "urgent-community-response",
    }
    response = client.post(
        "/referrals",
        json=body,
        headers=issuer.headers("b81001", "referrals", **{"Idempotency-Key": str(uuid.uuid4())}),
    )
    assert response.status_code == 403
    assert "on behalf of L81001" in response.json()["detail"]
