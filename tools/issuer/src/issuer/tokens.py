"""Minting access tokens: a signed JWT per grant, for a client system or for a person."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from .clients import Client
from .keys import SigningKey
from .users import User


def mint(
    client: Client,
    audience: str,
    issuer: str,
    key: SigningKey,
    ttl_seconds: int,
    now: datetime | None = None,
) -> str:
    """An access token for ``client`` to call the service ``audience``. The claims are what
    every service turns into the caller's identity (``rx_web.tokens``)."""
    assert client.organisation is not None  # a client_credentials client has one
    claims = _base(issuer, client.client_id, audience, ttl_seconds, now)
    claims.update(
        client_id=client.client_id,
        org=client.organisation,
        roles=sorted(role.value for role in client.roles),
    )
    if client.provider_type is not None:
        claims["provider_type"] = client.provider_type.value
    return _sign(claims, key)


def mint_for_user(
    user: User,
    client: Client,
    issuer: str,
    key: SigningKey,
    ttl_seconds: int,
    now: datetime | None = None,
) -> str:
    """An access token for ``client`` to call its services on behalf of ``user``: the user's
    organisation acting as a provider, with the practitioner signed in (not self-declared)."""
    audiences = sorted(client.audiences)
    claims = _base(issuer, user.username, audiences, ttl_seconds, now)
    claims.update(
        client_id=client.client_id,
        org=user.organisation,
        roles=["provider"],
        practitioner=user.practitioner,
        job_roles=sorted(role.value for role in user.job_roles),
    )
    if user.provider_type is not None:
        claims["provider_type"] = user.provider_type.value
    return _sign(claims, key)


def _base(
    issuer: str, subject: str, audience: str | list[str], ttl: int, now: datetime | None
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    return {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=ttl),
        "jti": str(uuid.uuid4()),
    }


def _sign(claims: dict[str, Any], key: SigningKey) -> str:
    return jwt.encode(
        claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "JWT"}
    )
