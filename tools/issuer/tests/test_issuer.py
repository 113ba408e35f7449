"""The issuer as a provider system meets it: client credentials in, a signed token out; every
way to get it wrong answered as RFC 6749 says; keys published and rotated."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jwt
import pytest
from issuer.app import create_app
from issuer.clients import Registry, demo_registry, demo_secret, load_registry, sha256
from issuer.config import Settings
from issuer.keys import KeyStore
from issuer.testing import ISSUER_URL, TestIssuer
from routing.entrypoints.seed import ORGANISATIONS
from rx_web.settings import DefaultSecretError, Environment


@pytest.fixture
def issuer(tmp_path: Path) -> TestIssuer:
    return TestIssuer(tmp_path)


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def test_a_demo_client_gets_a_signed_token_carrying_its_organisation_and_roles(
    issuer: TestIssuer,
) -> None:
    response = issuer.request_token("rxa01", "referrals")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "EdDSA" and header["kid"] == issuer.keys.current().kid
    jwks = issuer.client.get("/.well-known/jwks.json").json()
    key = jwt.PyJWK(jwks["keys"][0])
    claims = jwt.decode(
        body["access_token"], key.key, algorithms=["EdDSA"], audience="referrals", issuer=ISSUER_URL
    )
    assert claims["org"] == "RXA01"
    assert claims["roles"] == ["provider"]
    assert claims["provider_type"] == "rapid-response"
    assert claims["client_id"] == claims["sub"] == "rxa01"
    assert claims["exp"] - claims["iat"] == 900


def test_credentials_in_the_form_work_too(issuer: TestIssuer) -> None:
    response = issuer.client.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "audience": "audit",
            "client_id": "ops",
            "client_secret": demo_secret("ops"),
        },
    )
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["roles"] == ["ops"] and claims["aud"] == "audit"


@pytest.mark.parametrize(
    ("headers", "form"),
    [
        (basic("rxa01", "wrong"), {}),
        (basic("nobody", "rxa01-demo-secret"), {}),
        ({}, {"client_id": "rxa01", "client_secret": "wrong"}),
        ({}, {}),
        ({"Authorization": "Basic !!!not-base64"}, {}),
    ],
    ids=["wrong-secret", "unknown-client", "wrong-secret-in-form", "no-credentials", "garbled"],
)
def test_bad_client_credentials_are_401_invalid_client(
    issuer: TestIssuer, headers: dict[str, str], form: dict[str, str]
) -> None:
    response = issuer.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "audience": "referrals", **form},
        headers=headers,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "access_token" not in response.text
    if headers:
        assert response.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": "authorization_code"}, 400, "unauthorized_client"),  # systems: no
        ({"grant_type": ""}, 400, "invalid_request"),
        ({"audience": ""}, 400, "invalid_request"),
        ({"audience": "audit"}, 400, "invalid_target"),  # a provider may not call audit
        ({"audience": "elsewhere"}, 400, "invalid_target"),
    ],
)
def test_bad_grants_are_answered_as_rfc_6749_errors(
    issuer: TestIssuer, form: dict[str, str], status: int, error: str
) -> None:
    response = issuer.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "audience": "referrals", **form},
        headers=basic("rxa01", demo_secret("rxa01")),
    )
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["error_description"]


def test_the_token_endpoint_wants_a_form(issuer: TestIssuer) -> None:
    response = issuer.client.post(
        "/oauth2/token",
        json={"grant_type": "client_credentials", "audience": "referrals"},
        headers=basic("rxa01", demo_secret("rxa01")),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_discovery_names_the_token_endpoint_and_jwks(issuer: TestIssuer) -> None:
    document = issuer.client.get("/.well-known/openid-configuration").json()
    assert document["issuer"] == ISSUER_URL
    assert document["token_endpoint"] == f"{ISSUER_URL}/oauth2/token"
    assert document["jwks_uri"] == f"{ISSUER_URL}/.well-known/jwks.json"


def test_rotation_signs_with_a_new_key_and_keeps_the_old_one_published(
    issuer: TestIssuer,
) -> None:
    before = issuer.token("scc01", "referrals")
    old_kid = jwt.get_unverified_header(before)["kid"]
    # Another process (python -m issuer rotate-key) rewrites the key file.
    KeyStore(issuer.settings.keys_file).rotate()
    after = issuer.request_token("scc01", "referrals").json()["access_token"]
    new_kid = jwt.get_unverified_header(after)["kid"]
    assert new_kid != old_kid
    published = [k["kid"] for k in issuer.client.get("/.well-known/jwks.json").json()["keys"]]
    assert published == [new_kid, old_kid]
    for _ in range(3):
        KeyStore(issuer.settings.keys_file, keep=3).rotate()
    published = [k["kid"] for k in issuer.client.get("/.well-known/jwks.json").json()["keys"]]
    assert len(published) == 3 and old_kid not in published


def test_the_key_file_is_private(issuer: TestIssuer) -> None:
    assert issuer.settings.keys_file.stat().st_mode & 0o077 == 0


def test_rs256_keys_work_as_well(tmp_path: Path) -> None:
    settings = Settings(
        url=ISSUER_URL,
        keys_file=tmp_path / "keys.json",
        algorithm="RS256",
        rx_env=Environment.DEVELOPMENT,
    )
    jwk = KeyStore(settings.keys_file, "RS256").jwks()["keys"][0]
    assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256" and "d" not in jwk
    create_app(settings)  # loads the same file


def test_the_jwks_holds_no_private_key_material(issuer: TestIssuer) -> None:
    for key in issuer.client.get("/.well-known/jwks.json").json()["keys"]:
        assert "d" not in key and key["use"] == "sig"


def test_every_demo_organisation_has_a_demo_client_plus_ops_and_admin() -> None:
    clients = demo_registry().clients
    organisations = {c.organisation for c in clients}
    assert {o.ods_code for o in ORGANISATIONS} <= organisations
    assert {role for c in clients for role in c.roles} == {"provider", "ops", "admin"}
    for c in clients:
        assert c.secret_matches(demo_secret(c.client_id)), c.client_id


def test_outside_development_the_demo_clients_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DefaultSecretError, match="demo clients"):
        load_registry(None, Environment.PRODUCTION)
    reused = tmp_path / "clients.json"
    reused.write_text(Registry(clients=demo_registry().clients[:1]).model_dump_json())
    with pytest.raises(DefaultSecretError, match="b81001"):
        load_registry(reused, Environment.PRODUCTION)
    own = demo_registry().clients[0].model_copy(update={"secret_sha256": sha256("s3cr3t-own")})
    reused.write_text(json.dumps({"clients": [own.model_dump(mode="json")]}))
    assert load_registry(reused, Environment.PRODUCTION).clients[0].client_id == "b81001"
