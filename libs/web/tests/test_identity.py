"""The identity every route depends on: missing or malformed → 401, wrong role → 403."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from rx_contracts import Identity, Role
from rx_web.identity import IdentityDep, require_roles
from rx_web.problems import install_problem_handlers


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/me")
    def me(identity: IdentityDep) -> dict[str, object]:
        return identity.model_dump(mode="json")

    @app.get("/ops-only")
    def ops_only(
        identity: Annotated[Identity, Depends(require_roles(Role.OPS, Role.ADMIN))],
    ) -> str:
        return identity.organisation

    return TestClient(app)


def test_headers_become_an_identity(client: TestClient) -> None:
    response = client.get(
        "/me",
        headers={
            "X-Organisation": "rxa01",
            "X-Roles": "provider, ops",
            "X-Provider-Type": "rapid-response",
            "X-Practitioner": "N7654321",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["organisation"] == "RXA01"
    assert sorted(body["roles"]) == ["ops", "provider"]
    assert body["provider_type"] == "rapid-response"
    assert body["practitioner"] == "N7654321"


@pytest.mark.parametrize(
    ("headers", "names"),
    [
        ({}, "X-Organisation"),
        ({"X-Organisation": "B8-1001"}, "ODS code"),
        ({"X-Organisation": "B81001", "X-Roles": "superuser"}, "superuser"),
        ({"X-Organisation": "B81001", "X-Provider-Type": "dentist"}, "dentist"),
    ],
)
def test_missing_or_malformed_identity_is_401_problem(
    client: TestClient, headers: dict[str, str], names: str
) -> None:
    response = client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert names in response.json()["detail"]


def test_role_check_refuses_other_roles_with_403(client: TestClient) -> None:
    provider = client.get("/ops-only", headers={"X-Organisation": "B81001"})
    assert provider.status_code == 403
    assert "ops" in provider.json()["detail"]
    ops = client.get("/ops-only", headers={"X-Organisation": "RX0PS", "X-Roles": "ops"})
    assert ops.status_code == 200
    assert ops.json() == "RX0PS"
