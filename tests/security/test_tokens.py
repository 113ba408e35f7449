"""Bearer tokens as every service checks them (rx_web.tokens), against the real issuer run
in-process: each way a token can be wrong is a 401 problem+json whose WWW-Authenticate says
why, and key rotation works without a restart."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import FastAPI
from fastapi.testclient import TestClient
from issuer.keys import KeyStore
from issuer.testing import ISSUER_URL, TestIssuer, sign_in_tokens
from rx_web.auth import AuthScheme, AuthSettings, install_auth
from rx_web.identity import IdentityDep
from rx_web.problems import install_problem_handlers
from rx_web.settings import Environment
from rx_web.tokens import Jwks, TokenError, TokenVerifier, VerifierConfig

TOKENS = AuthSettings(env=Environment.DEVELOPMENT, auth=AuthScheme.TOKENS)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer(tmp_path: Path) -> TestIssuer:
    return TestIssuer(tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(issuer: TestIssuer, clock: Clock) -> TestClient:
    """A service with the audience 'referrals' that verifies tokens from ``issuer``; its JWKS
    cache runs on ``clock`` and refetches at most every 5 s."""
    app = FastAPI()
    install_problem_handlers(app)
    install_auth(app, "referrals", TOKENS)
    issuer.attach(app, min_refresh_seconds=5.0, clock=clock)

    @app.get("/me")
    def me(identity: IdentityDep) -> dict[str, Any]:
        return identity.model_dump(mode="json")

    return TestClient(app)


def jwks_of(service: TestClient) -> Jwks:
    jwks: Jwks = service.app.state.authenticator.verifier.jwks  # type: ignore[attr-defined]
    return jwks


def claims(**changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    base = {
        "iss": ISSUER_URL,
        "sub": "rxa01",
        "aud": "referrals",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "jti": str(uuid.uuid4()),
        "client_id": "rxa01",
        "org": "RXA01",
        "roles": ["provider"],
        "provider_type": "rapid-response",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def signed(issuer: TestIssuer, **changes: Any) -> str:
    """A token signed with the issuer's current key, with ``changes`` to the claims."""
    key = issuer.keys.current()
    return jwt.encode(
        claims(**changes), key.private_key, algorithm="EdDSA", headers={"kid": key.kid}
    )


def call(service: TestClient, token: str | None, **headers: str) -> Any:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return service.get("/me", headers=headers)


def assert_401(response: Any, says: str, error: str = "invalid_token") -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert says in response.json()["detail"]
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="referrals"')
    assert f'error="{error}"' in challenge and says in challenge
    assert "organisation" not in response.json()


def test_a_token_from_the_issuer_is_the_callers_identity(
    issuer: TestIssuer, service: TestClient
) -> None:
    response = call(service, issuer.token("rxa01", "referrals"), **{"X-Practitioner": "N7654321"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "organisation": "RXA01",
        "roles": ["provider"],
        "provider_type": "rapid-response",
        "practitioner": "N7654321",
        "client_id": "rxa01",
    }


def test_no_token_is_401_with_a_bare_challenge(service: TestClient) -> None:
    response = call(service, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="referrals"'
    assert "Bearer" in response.json()["detail"]


def test_the_development_headers_are_no_identity_when_tokens_are_on(service: TestClient) -> None:
    response = call(service, None, **{"X-Organisation": "RXA01", "X-Roles": "ops"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("authorization", "says"),
    [
        ("Basic cnhhMDE6c2VjcmV0", "must be 'Bearer <token>'"),
        ("Bearer", "must be 'Bearer <token>'"),
        ("Token abc", "must be 'Bearer <token>'"),
    ],
)
def test_a_malformed_authorization_header_is_invalid_request(
    service: TestClient, authorization: str, says: str
) -> None:
    assert_401(
        service.get("/me", headers={"Authorization": authorization}), says, "invalid_request"
    )


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "eyJhbGciOiJFZERTQSJ9.e30"])
def test_a_malformed_token_is_401(service: TestClient, token: str) -> None:
    assert_401(call(service, token), "malformed token")


def test_an_expired_token_is_401_but_small_clock_skew_is_forgiven(
    issuer: TestIssuer, service: TestClient
) -> None:
    now = datetime.now(UTC)
    expired = signed(issuer, iat=now - timedelta(hours=1), exp=now - timedelta(seconds=120))
    assert_401(call(service, expired), "expired")
    skewed = signed(issuer, exp=now - timedelta(seconds=10))  # within the 30 s leeway
    assert call(service, skewed).status_code == 200


def test_a_token_not_yet_valid_is_401(issuer: TestIssuer, service: TestClient) -> None:
    later = datetime.now(UTC) + timedelta(minutes=10)
    assert_401(call(service, signed(issuer, nbf=later)), "not valid yet")


def test_a_token_signed_by_another_key_under_the_issuers_kid_is_401(
    issuer: TestIssuer, service: TestClient
) -> None:
    forged = jwt.encode(
        claims(roles=["ops"]),
        ed25519.Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": issuer.keys.current().kid},
    )
    assert_401(call(service, forged), "bad signature")


def test_a_token_whose_claims_were_edited_is_401(issuer: TestIssuer, service: TestClient) -> None:
    header, _payload, signature = issuer.token("rxa01", "referrals").split(".")
    edited = jwt.decode(issuer.token("ops", "referrals"), options={"verify_signature": False})
    forged_payload = base64.urlsafe_b64encode(json.dumps(edited).encode()).rstrip(b"=")
    assert_401(call(service, f"{header}.{forged_payload.decode()}.{signature}"), "bad signature")


def test_a_token_for_another_service_is_401(issuer: TestIssuer, service: TestClient) -> None:
    assert_401(call(service, issuer.token("rxa01", "routing")), "not for this service")


def test_a_token_from_another_issuer_is_401(issuer: TestIssuer, service: TestClient) -> None:
    assert_401(call(service, signed(issuer, iss="https://elsewhere.example")), "another issuer")


def test_a_token_without_an_expiry_is_401(issuer: TestIssuer, service: TestClient) -> None:
    assert_401(call(service, signed(issuer, exp=None)), "'exp'")


def test_a_token_whose_claims_are_no_identity_is_401(
    issuer: TestIssuer, service: TestClient
) -> None:
    assert_401(call(service, signed(issuer, org="not an ods code")), "organisation")
    assert_401(call(service, signed(issuer, roles=["superuser"])), "roles")


def test_alg_none_is_refused(issuer: TestIssuer, service: TestClient) -> None:
    unsigned = jwt.encode(
        claims(roles=["ops"]), None, algorithm="none", headers={"kid": issuer.keys.current().kid}
    )
    assert_401(call(service, unsigned), "algorithm 'none' is not accepted")


def test_hs256_signed_with_the_public_key_is_refused(
    issuer: TestIssuer, service: TestClient
) -> None:
    # The classic confusion: the public key, which anyone can fetch, used as an HMAC secret.
    public = issuer.client.get("/.well-known/jwks.json").json()["keys"][0]
    secret = base64.urlsafe_b64decode(public["x"] + "==")
    forged = jwt.encode(
        claims(roles=["ops"]), secret, algorithm="HS256", headers={"kid": public["kid"]}
    )
    assert_401(call(service, forged), "algorithm 'HS256' is not accepted")


def test_an_unknown_kid_refetches_the_keys_once_then_is_401(
    issuer: TestIssuer, service: TestClient, clock: Clock
) -> None:
    assert call(service, issuer.token("rxa01", "referrals")).status_code == 200
    jwks = jwks_of(service)
    assert jwks.fetches == 1
    clock.now += 10
    key = issuer.keys.current()
    stranger = jwt.encode(claims(), key.private_key, algorithm="EdDSA", headers={"kid": "nope"})
    assert_401(call(service, stranger), "unknown signing key 'nope'")
    assert jwks.fetches == 2, "an unknown kid refetches the JWKS"
    for _ in range(20):
        assert_401(call(service, stranger), "unknown signing key")
    assert jwks.fetches == 2, "refetches are rate-limited: made-up kids cannot hammer the issuer"
    clock.now += 5
    call(service, stranger)
    assert jwks.fetches == 3


def test_after_a_rotation_new_tokens_work_and_old_ones_still_do(
    issuer: TestIssuer, service: TestClient, clock: Clock
) -> None:
    old = issuer.token("rxa01", "referrals")
    assert call(service, old).status_code == 200
    KeyStore(issuer.settings.keys_file).rotate()  # python -m issuer rotate-key
    clock.now += 5
    new = issuer.request_token("rxa01", "referrals").json()["access_token"]
    assert jwt.get_unverified_header(new)["kid"] != jwt.get_unverified_header(old)["kid"]
    assert call(service, new).status_code == 200, "the verifier fetched the new key"
    assert call(service, old).status_code == 200, "the old key stays published"


def test_the_keys_are_cached_for_their_ttl(
    issuer: TestIssuer, service: TestClient, clock: Clock
) -> None:
    token = issuer.token("rxa01", "referrals")
    for _ in range(5):
        assert call(service, token).status_code == 200
    assert jwks_of(service).fetches == 1
    clock.now += 301
    assert call(service, token).status_code == 200
    assert jwks_of(service).fetches == 2


def test_an_unreachable_issuer_with_no_keys_cached_is_503(issuer: TestIssuer) -> None:
    app = FastAPI()
    install_problem_handlers(app)
    settings = TOKENS.model_copy(update={"token_issuer": "http://127.0.0.1:9"})
    install_auth(app, "referrals", settings)

    @app.get("/me")
    def me(identity: IdentityDep) -> str:
        return identity.organisation

    response = TestClient(app).get(
        "/me", headers={"Authorization": f"Bearer {issuer.token('rxa01', 'referrals')}"}
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"


def test_a_known_key_keeps_working_while_the_issuer_is_down(
    issuer: TestIssuer, service: TestClient, clock: Clock
) -> None:
    token = issuer.token("rxa01", "referrals")
    assert call(service, token).status_code == 200
    jwks = jwks_of(service)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    jwks._transport = httpx.MockTransport(down)
    clock.now += 301  # stale: a refresh is tried, fails, and the cached key is kept
    assert call(service, token).status_code == 200
    assert jwks.fetches == 2


def test_a_signed_in_persons_token_names_the_practitioner_and_the_header_cannot_change_it(
    issuer: TestIssuer, service: TestClient
) -> None:
    token = sign_in_tokens(issuer, "rxa01.clinician")["access_token"]
    practitioner = jwt.decode(token, options={"verify_signature": False})["practitioner"]
    bearer = {"Authorization": f"Bearer {token}"}

    me = service.get("/me", headers=bearer)
    assert me.status_code == 200, me.text
    assert me.json()["practitioner"] == practitioner
    assert me.json()["organisation"] == "RXA01" and me.json()["client_id"] == "portal"
    same = service.get("/me", headers={**bearer, "X-Practitioner": practitioner})
    assert same.status_code == 200

    other = service.get("/me", headers={**bearer, "X-Practitioner": "G0000001"})
    assert other.status_code == 401
    assert "X-Practitioner differs" in other.headers["www-authenticate"]


def test_a_token_seen_before_is_refused_once_it_expires(issuer: TestIssuer) -> None:
    """Verified tokens are remembered (one signature check per token, not per call), but
    never past their expiry."""
    config = VerifierConfig(
        issuer=ISSUER_URL, audience="referrals", jwks_url="unused", leeway_seconds=0
    )
    verifier = TokenVerifier(config, issuer.jwks())
    expires = datetime.now(UTC) + timedelta(seconds=1.5)
    token = signed(issuer, exp=expires)
    for _ in range(3):
        assert asyncio.run(verifier.verify(token))["org"] == "RXA01"
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.6)
    with pytest.raises(TokenError, match="expired"):
        asyncio.run(verifier.verify(token))
