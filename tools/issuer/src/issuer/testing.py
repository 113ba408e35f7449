"""An in-process issuer for tests: real tokens and a real JWKS without a server.

``services`` verify tokens against it through :meth:`TestIssuer.attach`, which points an app's
token verifier at this issuer's JWKS over an in-process transport."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from rx_web.auth import Authenticator
from rx_web.settings import Environment
from rx_web.tokens import Jwks, TokenVerifier

from .app import create_app
from .clients import demo_secret
from .config import Settings
from .keys import KeyStore
from .users import demo_password

ISSUER_URL = "http://issuer.test"
CALLBACK = "http://127.0.0.1:8004/auth/callback"
"""A redirect URI the demo portal client may use (loopback: any port)."""


@dataclass
class TestIssuer:
    """The issuer app with the demo clients, its keys in ``directory``."""

    directory: Path
    settings: Settings = field(init=False)
    app: FastAPI = field(init=False)
    client: TestClient = field(init=False)
    _tokens: dict[tuple[str, str], str] = field(default_factory=dict, init=False)

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __post_init__(self) -> None:
        self.settings = Settings(
            url=ISSUER_URL,
            keys_file=self.directory / "keys.json",
            rx_env=Environment.DEVELOPMENT,
        )
        self.app = create_app(self.settings)
        self.client = TestClient(self.app, base_url=ISSUER_URL)

    @property
    def keys(self) -> KeyStore:
        store: KeyStore = self.app.state.keys
        return store

    def request_token(self, client_id: str, audience: str, **form: str) -> httpx.Response:
        credentials = f"{client_id}:{demo_secret(client_id)}".encode()
        return self.client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "audience": audience, **form},
            headers={"Authorization": "Basic " + base64.b64encode(credentials).decode()},
        )

    def token(self, client_id: str, audience: str) -> str:
        """An access token of the demo client ``client_id`` for ``audience`` (cached)."""
        token = self.try_token(client_id, audience)
        assert token is not None, f"the issuer gives {client_id} no token for {audience}"
        return token

    def try_token(self, client_id: str, audience: str) -> str | None:
        """The token, or None if this client may not call ``audience`` (invalid_target)."""
        if (client_id, audience) not in self._tokens:
            response = self.request_token(client_id, audience)
            if response.status_code == 400 and response.json()["error"] == "invalid_target":
                return None
            assert response.status_code == 200, response.text
            self._tokens[client_id, audience] = response.json()["access_token"]
        return self._tokens[client_id, audience]

    def headers(self, client_id: str, audience: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(client_id, audience)}", **extra}

    def jwks(self, **options: Any) -> Jwks:
        """A JWKS cache reading this issuer in-process (``options``: ttl, min refresh, clock)."""
        options = {"ttl_seconds": 300.0, "min_refresh_seconds": 0.0, **options}
        return Jwks(
            f"{ISSUER_URL}/.well-known/jwks.json",
            transport=httpx.ASGITransport(app=self.app),
            **options,
        )

    def attach(self, app: FastAPI, **options: Any) -> None:
        """Make ``app`` (built by ``rx_web.app.service_app``) verify tokens from this issuer."""
        authenticator: Authenticator = app.state.authenticator
        assert authenticator.verifier is not None, "the app does not use tokens (RX_AUTH)"
        config = dataclasses.replace(authenticator.verifier.config, issuer=ISSUER_URL)
        # The middleware holds this same authenticator, so replacing its verifier is enough.
        authenticator.verifier = TokenVerifier(config, self.jwks(**options))


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_in_tokens(
    issuer: TestIssuer, username: str, redirect_uri: str = CALLBACK
) -> dict[str, Any]:
    """The tokens the portal gets when ``username`` (a demo user) signs in: the whole
    authorization code flow with PKCE, in-process."""
    client = TestClient(issuer.app, base_url=ISSUER_URL)  # a browser of its own
    verifier, challenge = pkce_pair()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": "portal",
            "redirect_uri": redirect_uri,
            "scope": "openid profile",
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    page = client.get(f"/oauth2/authorize?{query}")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None, page.text
    answer = client.post(
        f"/oauth2/authorize?{query}",
        data={
            "csrf_token": csrf.group(1),
            "username": username,
            "password": demo_password(username),
        },
        follow_redirects=False,
    )
    assert answer.status_code == 302, answer.text
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    response = client.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        auth=("portal", demo_secret("portal")),
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens
