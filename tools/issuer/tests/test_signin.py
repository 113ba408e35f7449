"""People signing in through OpenID Connect, as a web app (the portal) meets the issuer:
authorization code with PKCE, the sign-in page, ID and access tokens, sign-out."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from issuer.clients import demo_secret
from issuer.testing import ISSUER_URL, TestIssuer
from issuer.users import demo_password

CALLBACK = "http://127.0.0.1:8004/auth/callback"
SIGNED_OUT = "http://127.0.0.1:8004/signed-out"


@pytest.fixture
def issuer(tmp_path: Path) -> TestIssuer:
    return TestIssuer(tmp_path)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(challenge: str | None, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": "portal",
        "redirect_uri": CALLBACK,
        "scope": "openid profile",
        "state": "s-123",
        "nonce": "n-456",
        **extra,
    }
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    return "/oauth2/authorize?" + urlencode(params)


def sign_in(
    issuer: TestIssuer, url: str, username: str, password: str | None = None
) -> httpx.Response:
    page = issuer.client.get(url)
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    action = re.search(r'action="([^"]+)"', page.text)
    assert action is not None
    return issuer.client.post(
        action.group(1).replace("&amp;", "&"),
        data={
            "csrf_token": csrf.group(1),
            "username": username,
            "password": demo_password(username) if password is None else password,
        },
        follow_redirects=False,
    )


def code_from(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = parse_qs(location.query)
    assert query["state"] == ["s-123"]
    return query["code"][0]


def exchange(issuer: TestIssuer, code: str, verifier: str) -> httpx.Response:
    return issuer.client.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        },
        auth=("portal", demo_secret("portal")),
    )


def verify(issuer: TestIssuer, token: str, audience: str) -> dict[str, object]:
    key = jwt.PyJWK(issuer.client.get("/.well-known/jwks.json").json()["keys"][0])
    claims: dict[str, object] = jwt.decode(
        token, key.key, algorithms=["EdDSA"], audience=audience, issuer=ISSUER_URL
    )
    return claims


def test_a_person_signs_in_and_the_app_gets_their_signed_tokens(issuer: TestIssuer) -> None:
    verifier, challenge = pkce()
    code = code_from(sign_in(issuer, authorize_url(challenge), "rxa01.clinician"))
    response = exchange(issuer, code, verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()

    access = verify(issuer, tokens["access_token"], "referrals")
    assert access["org"] == "RXA01" and access["provider_type"] == "rapid-response"
    assert access["roles"] == ["provider"]
    assert access["sub"] == "rxa01.clinician" and access["client_id"] == "portal"
    assert isinstance(access["practitioner"], str) and access["practitioner"]
    assert access["job_roles"] == ["clinician"]

    identity = verify(issuer, tokens["id_token"], "portal")
    assert identity["nonce"] == "n-456"
    assert identity["name"] and identity["org"] == "RXA01"
    assert identity["practitioner"] == access["practitioner"]

    info = issuer.client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.status_code == 200 and info.json()["sub"] == "rxa01.clinician"

    # The code is used once.
    assert exchange(issuer, code, verifier).json()["error"] == "invalid_grant"


def test_the_code_needs_the_pkce_verifier_that_matches_its_challenge(issuer: TestIssuer) -> None:
    _verifier, challenge = pkce()
    code = code_from(sign_in(issuer, authorize_url(challenge), "b81001.referrer"))
    response = exchange(issuer, code, pkce()[0])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_an_authorization_request_without_pkce_goes_back_with_an_error(
    issuer: TestIssuer,
) -> None:
    response = issuer.client.get(authorize_url(None), follow_redirects=False)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and "PKCE" in query["error_description"][0]


def test_an_unregistered_redirect_uri_is_never_followed(issuer: TestIssuer) -> None:
    _verifier, challenge = pkce()
    response = issuer.client.get(
        authorize_url(challenge, redirect_uri="https://evil.example/cb"), follow_redirects=False
    )
    assert response.status_code == 400
    assert "evil.example" not in response.headers.get("location", "")
    assert "cannot sign in" in response.text


def test_a_wrong_password_is_refused_on_the_page(issuer: TestIssuer) -> None:
    _verifier, challenge = pkce()
    response = sign_in(issuer, authorize_url(challenge), "rxa01.clinician", "wrong")
    assert response.status_code == 401
    assert "Enter a correct username and password" in response.text
    assert 'value="rxa01.clinician"' in response.text


def test_the_sign_in_form_needs_its_csrf_token(issuer: TestIssuer) -> None:
    _verifier, challenge = pkce()
    url = authorize_url(challenge)
    issuer.client.get(url)
    response = issuer.client.post(
        url,
        data={"username": "rxa01.clinician", "password": demo_password("rxa01.clinician")},
        follow_redirects=False,
    )
    assert response.status_code == 400 and "location" not in response.headers


def test_a_second_sign_in_within_the_session_asks_no_password_until_sign_out(
    issuer: TestIssuer,
) -> None:
    verifier, challenge = pkce()
    code = code_from(sign_in(issuer, authorize_url(challenge), "rxa02.lead"))
    id_token = exchange(issuer, code, verifier).json()["id_token"]

    again = issuer.client.get(authorize_url(pkce()[1], nonce="n-2"), follow_redirects=False)
    assert again.status_code == 302 and "code=" in again.headers["location"]

    out = issuer.client.get(
        "/oauth2/logout?"
        + urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": SIGNED_OUT}),
        follow_redirects=False,
    )
    assert out.status_code == 302 and out.headers["location"].startswith(SIGNED_OUT)
    page = issuer.client.get(authorize_url(pkce()[1], nonce="n-3"), follow_redirects=False)
    assert page.status_code == 200 and 'name="password"' in page.text


def test_discovery_describes_sign_in(issuer: TestIssuer) -> None:
    config = issuer.client.get("/.well-known/openid-configuration").json()
    assert config["authorization_endpoint"] == f"{ISSUER_URL}/oauth2/authorize"
    assert config["end_session_endpoint"] == f"{ISSUER_URL}/oauth2/logout"
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert "authorization_code" in config["grant_types_supported"]
