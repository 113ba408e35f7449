"""Authenticating callers: bearer tokens from the issuer, or (development only, when asked for)
the identity headers of the development scheme.

:class:`Authenticate` middleware authenticates each request once and leaves the outcome in the
request's state, where the rate limiter (per client) and :func:`rx_web.identity.get_identity`
(per route) read it. A route that needs no identity (``/health``) ignores it."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from fastapi import FastAPI
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from rx_contracts import Identity, ProviderType, Role
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from .problems import Problem, invalid_field
from .settings import Environment
from .tokens import KeysUnavailable, TokenError, TokenVerifier, VerifierConfig, identity_from_claims

log = logging.getLogger(__name__)

STATE_KEY = "rx_identity"
"""Where :class:`Authenticate` leaves an :class:`Identity` or the :class:`Problem` to answer."""

_ODS = re.compile(r"^[A-Z0-9]{3,10}$")
PRACTITIONER_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
"""A professional identifier as X-Practitioner carries it (documented on every route)."""
_PRACTITIONER = re.compile(PRACTITIONER_PATTERN)


class AuthScheme(StrEnum):
    TOKENS = "tokens"
    """Bearer JWTs from the issuer (the default, and the only scheme outside development)."""
    DEV_HEADERS = "dev-headers"
    """X-Organisation / X-Roles / X-Provider-Type headers, trusted as sent: tests only."""


class AuthSettings(BaseSettings):
    """``RX_*`` settings shared by every API process."""

    model_config = SettingsConfigDict(env_prefix="RX_", extra="ignore")

    env: Environment = Environment.PRODUCTION
    auth: AuthScheme = AuthScheme.TOKENS
    token_issuer: str = Field(
        default="http://127.0.0.1:8000", description="The issuer tokens must name (iss)."
    )
    jwks_url: str | None = Field(
        default=None, description="Where the issuer's keys are; default <issuer>/.well-known/…"
    )
    jwks_ttl_seconds: float = Field(default=300, gt=0)
    jwks_min_refresh_seconds: float = Field(default=5, ge=0)
    token_leeway_seconds: float = Field(default=30, ge=0, le=300)
    token_algorithms: list[str] = ["EdDSA", "RS256"]

    @model_validator(mode="after")
    def _dev_headers_only_in_development(self) -> AuthSettings:
        if self.auth is AuthScheme.DEV_HEADERS and self.env is not Environment.DEVELOPMENT:
            raise ValueError(
                f"RX_AUTH=dev-headers is refused with RX_ENV={self.env.value}: it lets any "
                "caller claim any organisation; use tokens"
            )
        return self

    def verifier_config(self, audience: str) -> VerifierConfig:
        return VerifierConfig(
            issuer=self.token_issuer,
            audience=audience,
            jwks_url=self.jwks_url or f"{self.token_issuer.rstrip('/')}/.well-known/jwks.json",
            algorithms=tuple(self.token_algorithms),
            leeway_seconds=self.token_leeway_seconds,
            jwks_ttl_seconds=self.jwks_ttl_seconds,
            min_refresh_seconds=self.jwks_min_refresh_seconds,
        )


class Authenticator:
    """Turns a request's headers into an :class:`Identity`, or a 401/503 :class:`Problem`."""

    IDENTITIES = 4096
    """How many (token, X-Practitioner) identities are kept (all dropped when full)."""

    def __init__(self, scheme: AuthScheme, audience: str, verifier: TokenVerifier | None) -> None:
        self.scheme, self.audience, self.verifier = scheme, audience, verifier
        self._identities: dict[tuple[str, str | None], tuple[dict[str, Any], Identity]] = {}

    @classmethod
    def from_settings(cls, settings: AuthSettings, audience: str) -> Authenticator:
        verifier = (
            TokenVerifier(settings.verifier_config(audience))
            if settings.auth is AuthScheme.TOKENS
            else None
        )
        return cls(settings.auth, audience, verifier)

    async def authenticate(self, headers: Mapping[str, str]) -> Identity:
        practitioner = _practitioner(headers.get("x-practitioner"))
        if self.verifier is None:
            return _dev_identity(headers, practitioner)
        authorization = headers.get("authorization")
        if not authorization:
            raise self._unauthorised("send Authorization: Bearer <token from the issuer>")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._unauthorised(
                "the Authorization header must be 'Bearer <token>'", "invalid_request"
            )
        try:
            claims = await self.verifier.verify(token.strip())
            # The verifier answers a token it checked already with the same claims (until it
            # expires or the keys change): the identity made of them then is the same too, and
            # making it (a pydantic model) costs more than the rest of a cached verification.
            known = self._identities.get((token, practitioner))
            if known is not None and known[0] is claims:
                return known[1]
            identity = identity_from_claims(claims, practitioner)
            if len(self._identities) >= self.IDENTITIES:
                self._identities.clear()
            self._identities[(token, practitioner)] = (claims, identity)
            return identity
        except TokenError as exc:
            raise self._unauthorised(exc.description, exc.error) from exc
        except KeysUnavailable as exc:
            raise Problem(
                503, "Cannot check tokens", str(exc), headers={"Retry-After": "5"}
            ) from exc

    def _unauthorised(self, description: str, error: str | None = None) -> Problem:
        challenge = f'Bearer realm="{self.audience}"'
        if error:
            safe = description.replace('"', "'")
            challenge += f', error="{error}", error_description="{safe}"'
        return Problem(401, "Unauthenticated", description, headers={"WWW-Authenticate": challenge})


class Authenticate:
    """ASGI middleware: authenticate once per request, keep the outcome in the request state."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app, self.authenticator = app, authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await authenticate_request(self.authenticator, scope)
        await self.app(scope, receive, send)


async def authenticate_request(authenticator: Authenticator, scope: Scope) -> None:
    """Authenticate the HTTP request ``scope`` and leave the outcome in its state."""
    outcome: Identity | Problem
    try:
        outcome = await authenticator.authenticate(Headers(scope=scope))
        log.debug(
            "%s %s: %s of %s, roles %s",
            scope["method"],
            scope["path"],
            outcome.client_id or "development identity",
            outcome.organisation,
            ",".join(sorted(outcome.roles)),
        )
    except Problem as problem:
        outcome = problem
        log.debug("%s %s: not authenticated: %s", scope["method"], scope["path"], problem.detail)
    scope.setdefault("state", {})[STATE_KEY] = outcome


def install_auth(
    app: FastAPI, audience: str, settings: AuthSettings | None = None
) -> Authenticator:
    """Authenticate every request to ``app`` for the service ``audience``."""
    authenticator = Authenticator.from_settings(settings or AuthSettings(), audience)
    app.state.authenticator = authenticator
    app.add_middleware(Authenticate, authenticator=authenticator)
    return authenticator


def _practitioner(value: str | None) -> str | None:
    if value is None:
        return None
    if not _PRACTITIONER.fullmatch(value):
        # Word for word what FastAPI answers for a header that breaks its documented pattern
        # (the header is documented on every identity route, but only checked here).
        raise invalid_field(
            "header.X-Practitioner",
            "string_pattern_mismatch",
            f"String should match pattern '{PRACTITIONER_PATTERN}'",
        )
    return value


def _dev_identity(headers: Mapping[str, str], practitioner: str | None) -> Identity:
    """The development scheme: the caller states its organisation and roles."""
    raw = headers.get("x-organisation")
    if not raw:
        raise Problem(401, "Unauthenticated", "send X-Organisation (your ODS code) and X-Roles")
    organisation = raw.strip().upper()
    if not _ODS.fullmatch(organisation):
        raise Problem(
            401,
            "Unauthenticated",
            f"bad identity headers: X-Organisation {raw!r} is not an ODS code "
            "(3-10 letters and digits)",
        )
    try:
        roles = frozenset(
            Role(r.strip()) for r in headers.get("x-roles", "provider").split(",") if r.strip()
        )
        provider_type = headers.get("x-provider-type")
        fields: dict[str, Any] = (
            {"provider_type": ProviderType(provider_type)} if provider_type else {}
        )
        return Identity(organisation=organisation, roles=roles, practitioner=practitioner, **fields)
    except (ValueError, ValidationError) as exc:
        raise Problem(401, "Unauthenticated", f"bad identity headers: {exc}") from exc
