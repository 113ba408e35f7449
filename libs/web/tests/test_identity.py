"""The identity every route depends on, under the development scheme: missing or malformed →
401, wrong role → 403; and that scheme is refused outside development. (Tokens:
tests/security/test_tokens.py.)"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Header
from fastapi.testclient import TestClient
from pydantic import ValidationError
from rx_contracts import Identity, Role
from rx_web.auth import (
    PRACTITIONER_PATTERN,
    Authenticator,
    AuthScheme,
    AuthSettings,
    install_auth,
)
from rx_web.identity import IdentityDep, require_roles
from rx_web.problems import install_problem_handlers
from rx_web.settings import Environment

DEV = AuthSettings(env=Environment.DEVELOPMENT, auth=AuthScheme.DEV_HEADERS)


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)
    install_auth(app, "test", DEV)

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


def test_the_dev_header_scheme_is_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValidationError, match="dev-headers is refused with RX_ENV=production"):
        AuthSettings(env=Environment.PRODUCTION, auth=AuthScheme.DEV_HEADERS)
    monkeypatch.setenv("RX_AUTH", "dev-headers")
    monkeypatch.delenv("RX_ENV", raising=False)  # unset means production
    with pytest.raises(ValidationError, match="dev-headers is refused"):
        AuthSettings()


def test_tokens_are_the_default_scheme_and_headers_alone_are_not_an_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RX_AUTH", raising=False)
    monkeypatch.setenv("RX_ENV", "development")
    app = FastAPI()
    install_problem_handlers(app)
    install_auth(app, "test")

    @app.get("/me")
    def me(identity: IdentityDep) -> str:
        return identity.organisation

    response = TestClient(app).get("/me", headers={"X-Organisation": "B81001"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="test"'


def test_a_malformed_practitioner_is_refused() -> None:
    app = FastAPI()
    install_problem_handlers(app)
    install_auth(app, "test", DEV)

    @app.get("/me")
    def me(identity: IdentityDep) -> str:
        return identity.organisation

    response = TestClient(app).get(
        "/me", headers={"X-Organisation": "B81001", "X-Practitioner": "G123\n4567 evil"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "header.X-Practitioner"
    assert "X-Practitioner" in response.json()["detail"]


def test_a_malformed_practitioner_gets_the_answer_fastapi_gives_for_its_pattern() -> None:
    """The middleware checks X-Practitioner (FastAPI does not, per request): its refusal is
    the one FastAPI gives for a header declared with the documented pattern."""
    app = FastAPI()
    install_problem_handlers(app)
    install_auth(app, "test", DEV)

    @app.get("/me")
    def me(identity: IdentityDep) -> str:
        return identity.organisation

    @app.get("/declared")
    def declared(
        practitioner: Annotated[
            str | None, Header(alias="X-Practitioner", pattern=PRACTITIONER_PATTERN)
        ] = None,
    ) -> str:
        return practitioner or ""

    client = TestClient(app)
    headers = {"X-Organisation": "B81001", "X-Practitioner": "G1234567 evil"}
    ours, fastapis = client.get("/me", headers=headers), client.get("/declared", headers=headers)
    assert ours.status_code == fastapis.status_code == 422
    assert ours.headers["content-type"] == fastapis.headers["content-type"]
    assert {**ours.json(), "instance": "/"} == {**fastapis.json(), "instance": "/"}
    assert client.get("/me", headers={**headers, "X-Practitioner": "G1234567"}).status_code == 200


class Verifier:
    """A token verifier answering each token with the claims it was given (one dict per
    verification, as after a re-check: a token expired or the keys changed)."""

    def __init__(self) -> None:
        self.claims: dict[str, dict[str, Any]] = {}

    async def verify(self, token: str) -> dict[str, Any]:
        return self.claims[token]


def test_a_token_is_the_identity_its_current_claims_and_x_practitioner_make() -> None:
    verifier = Verifier()
    authenticator = Authenticator(AuthScheme.TOKENS, "things", verifier)  # type: ignore[arg-type]
    verifier.claims["t"] = {"org": "RXA01", "roles": ["provider"], "client_id": "c"}

    def who(practitioner: str | None = None) -> Identity:
        headers = {"authorization": "Bearer t"}
        if practitioner:
            headers["x-practitioner"] = practitioner
        return asyncio.run(authenticator.authenticate(headers))

    assert (who("G1").practitioner, who("G2").practitioner, who().practitioner) == (
        "G1",
        "G2",
        None,
    )
    assert who("G1") == who("G1")
    verifier.claims["t"] = {"org": "RXB02", "roles": ["ops"], "client_id": "c"}
    assert (who("G1").organisation, who("G1").roles) == ("RXB02", frozenset({Role.OPS}))
