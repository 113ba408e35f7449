"""Minting access tokens: a signed JWT per client-credentials grant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from .clients import Client
from .keys import SigningKey


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
    now = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": client.client_id,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=ttl_seconds),
        "jti": str(uuid.uuid4()),
        "client_id": client.client_id,
        "org": client.organisation,
        "roles": sorted(role.value for role in client.roles),
    }
    if client.provider_type is not None:
        claims["provider_type"] = client.provider_type.value
    return jwt.encode(
        claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "JWT"}
    )
