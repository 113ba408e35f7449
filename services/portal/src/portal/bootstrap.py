"""Composition root: the sessions database, the HTTP client for the APIs, the OpenID client.
Nothing is built at import time; the app's lifespan calls this."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from rx_messaging.database import make_engine
from sqlalchemy.engine import Engine

from .adapters import migrate
from .adapters.sessions import SessionStore
from .config import Settings


@dataclass
class Container:
    settings: Settings
    engine: Engine
    sessions: SessionStore
    http: httpx.AsyncClient
    """Shared by every request to the referrals API; each carries its person's token."""
    oidc: StarletteOAuth2App


class _Issuer(StarletteOAuth2App):  # type: ignore[misc]
    """The discovered metadata, with the endpoints this process calls itself moved to the
    back-channel address when there is one."""

    backchannel: dict[str, str] = {}  # noqa: RUF012 (set per registration)

    async def load_server_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = await super().load_server_metadata()
        metadata.update(self.backchannel)
        return metadata


class _OAuth(OAuth):  # type: ignore[misc]
    oauth2_client_cls = _Issuer


def openid_client(settings: Settings) -> StarletteOAuth2App:
    """The portal as an OpenID Connect client of the issuer (found by discovery): authorization
    code with PKCE (S256), ID token checked against the issuer's keys."""
    back = settings.issuer_backchannel
    oauth = _OAuth()
    oauth.register(
        "issuer",
        client_id=settings.client_id,
        client_secret=settings.client_secret.get_secret_value(),
        server_metadata_url=f"{back}/.well-known/openid-configuration",
        client_kwargs={
            "scope": "openid profile",
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
        },
    )
    client: _Issuer = oauth.create_client("issuer")
    if settings.issuer_internal_url:
        client.backchannel = {
            "token_endpoint": f"{back}/oauth2/token",
            "jwks_uri": f"{back}/.well-known/jwks.json",
            "userinfo_endpoint": f"{back}/oauth2/userinfo",
        }
    return client


def bootstrap(settings: Settings, engine: Engine | None = None) -> Container:
    engine = engine or make_engine(settings.database_url)
    migrate.upgrade(engine)
    return Container(
        settings=settings,
        engine=engine,
        sessions=SessionStore(engine, settings.idle_timeout_seconds),
        http=httpx.AsyncClient(base_url=settings.referrals_url, timeout=10),
        oidc=openid_client(settings),
    )
