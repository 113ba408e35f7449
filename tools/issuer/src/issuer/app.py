"""The issuer's HTTP API: the OAuth2 token endpoint (client credentials, RFC 6749 §4.4, for
systems; authorization code with PKCE, for people signing in to a web app through OpenID
Connect, :mod:`issuer.signin`), the JWKS every service verifies tokens with, and the discovery
document."""

from __future__ import annotations

import base64
import binascii
import logging
import os
from typing import Any
from urllib.parse import unquote_plus

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from rx_web.problems import install_problem_handlers
from rx_web.security import install_security
from rx_web.settings import Environment

from .clients import Client, Registry, load_registry
from .config import AUDIENCES, Settings, get_settings
from .keys import KeyStore
from .oidc import OAuthRequest, Server
from .signin import signin_router
from .tokens import mint
from .users import load_users

log = logging.getLogger(__name__)

GRANT = "client_credentials"
CODE_GRANT = "authorization_code"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An RFC 6749 §5.2 error response."""

    def __init__(self, status: int, error: str, description: str, basic: bool = False) -> None:
        super().__init__(description)
        self.status, self.error, self.description, self.basic = status, error, description, basic


def create_app(settings: Settings | None = None) -> FastAPI:
    """The issuer app; the client registry is loaded (and checked against RX_ENV) here."""
    settings = settings or get_settings()
    registry = load_registry(settings.clients_file, settings.rx_env)
    users = load_users(settings.users_file, settings.rx_env)
    keys = KeyStore(settings.keys_file, settings.algorithm, settings.keys_kept)
    keys.keys()  # create the first key now, so a bad key file fails at start, not per request
    oidc = Server(registry, users, keys, settings)
    if settings.rx_env is Environment.DEVELOPMENT:
        # Authlib refuses plain http except on loopback; the compose stack's containers call
        # each other by name over http. Outside development the issuer sits behind TLS.
        os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
    app = FastAPI(
        title="Referral Exchange — token issuer",
        version="0.1.0",
        summary="OAuth2 client credentials: signed JWTs for provider, ops and admin systems.",
    )
    app.state.registry, app.state.keys, app.state.oidc = registry, keys, oidc
    install_problem_handlers(app)
    install_security(app, settings.rx_env)
    if settings.allowed_origins:
        # The ops console asks for its token from the browser; only the origins named here
        # may read the answer. Client credentials still travel in the request body.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["POST"],
            allow_headers=["Content-Type"],
        )

    @app.exception_handler(OAuthError)
    async def _oauth_error(_request: Request, exc: OAuthError) -> JSONResponse:
        headers = dict(NO_STORE)
        if exc.basic:
            headers["WWW-Authenticate"] = 'Basic realm="referral-exchange"'
        body = {"error": exc.error, "error_description": exc.description}
        return JSONResponse(body, status_code=exc.status, headers=headers)

    @app.post(
        "/oauth2/token",
        tags=["oauth2"],
        summary="Client credentials grant",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["grant_type"],
                            "properties": {
                                "grant_type": {"type": "string", "enum": [GRANT, CODE_GRANT]},
                                "audience": {"type": "string", "enum": list(AUDIENCES)},
                                "client_id": {"type": "string"},
                                "client_secret": {"type": "string"},
                                "code": {"type": "string"},
                                "redirect_uri": {"type": "string"},
                                "code_verifier": {"type": "string"},
                            },
                        }
                    }
                },
            }
        },
    )
    async def token(request: Request) -> Response:
        """Client credentials: authenticate with HTTP Basic (or ``client_id`` +
        ``client_secret`` in the form) and name the service to call as ``audience`` (or
        ``resource``). Authorization code: a web app exchanges the code of a person's sign-in
        (with its PKCE ``code_verifier``) for their access and ID tokens."""
        form = await _form(request)
        if form.get("grant_type") == CODE_GRANT:
            response: Response = oidc.create_token_response(await OAuthRequest.read(request))
            return response
        client = _authenticate(request, form, registry)
        if form.get("grant_type") != GRANT:
            raise OAuthError(
                400,
                "unsupported_grant_type" if form.get("grant_type") else "invalid_request",
                f"grant_type must be {GRANT}",
            )
        audience = form.get("audience") or form.get("resource")
        if not audience:
            raise OAuthError(
                400, "invalid_request", f"name the service to call: audience={'|'.join(AUDIENCES)}"
            )
        if audience not in client.audiences:
            raise OAuthError(
                400,
                "invalid_target",
                f"client {client.client_id} may not call {audience!r}; "
                f"it may call {sorted(client.audiences)}",
            )
        key = keys.current()
        access_token = mint(client, audience, settings.url, key, settings.token_ttl_seconds)
        log.debug(
            "token for %s to call %s (key %s, %d s)",
            client.client_id,
            audience,
            key.kid,
            settings.token_ttl_seconds,
        )
        body = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": settings.token_ttl_seconds,
        }
        return JSONResponse(body, headers=NO_STORE)

    @app.get("/.well-known/jwks.json", tags=["keys"], summary="Public signing keys")
    def jwks() -> JSONResponse:
        # Verifiers may cache briefly; they refetch on an unknown kid after a rotation.
        return JSONResponse(keys.jwks(), headers={"Cache-Control": "public, max-age=300"})

    @app.get("/.well-known/openid-configuration", tags=["keys"], summary="Discovery")
    def discovery() -> dict[str, Any]:
        return {
            "issuer": settings.url,
            "token_endpoint": f"{settings.url}/oauth2/token",
            "jwks_uri": f"{settings.url}/.well-known/jwks.json",
            "grant_types_supported": [GRANT, CODE_GRANT],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "id_token_signing_alg_values_supported": [settings.algorithm],
            **oidc.discovery(),
        }

    app.include_router(signin_router(app, oidc, settings))

    @app.get("/health", tags=["health"], summary="Liveness: the process is up")
    def health() -> dict[str, str]:
        return {"status": "ok", "service": "issuer"}

    @app.get("/ready", tags=["health"], summary="Readiness: the signing keys load")
    def ready() -> dict[str, str]:
        return {"status": "ready", "service": "issuer", "kid": keys.current().kid}

    return app


async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        raise OAuthError(
            400, "invalid_request", "send the parameters as application/x-www-form-urlencoded"
        )
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _authenticate(request: Request, form: dict[str, str], registry: Registry) -> Client:
    """RFC 6749 §2.3.1: HTTP Basic (id and secret form-encoded first) or the form's
    client_id + client_secret; one method only. Any failure is the same invalid_client."""
    header = request.headers.get("authorization", "")
    basic = header[:6].lower() == "basic "
    if basic and "client_secret" in form:
        raise OAuthError(400, "invalid_request", "use one client authentication method, not two")
    if basic:
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
            raw_id, _, raw_secret = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError(401, "invalid_client", "malformed Basic credentials", True) from None
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if not client_id or not secret:
        raise OAuthError(401, "invalid_client", "client authentication required", basic=True)
    client = registry.get(client_id)
    if client is None or not client.secret_matches(secret):
        # The same answer for an unknown client and a wrong secret: ids are not enumerable.
        raise OAuthError(401, "invalid_client", "unknown client or wrong secret", basic=basic)
    return client
