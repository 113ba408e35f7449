"""Registered clients: who may ask for tokens, for which organisation, roles and services.

A registry is a JSON file ``{"clients": [{...}, ...]}`` of :class:`Client` entries. Secrets are
stored as SHA-256 hex digests: client secrets are long random strings, so a fast hash is
enough, and the file never holds a usable secret. Without a file the demo clients are used,
which only development allows."""

from __future__ import annotations

import hashlib
import hmac
import json
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator
from rx_contracts import ProviderType, Role
from rx_web.settings import DefaultSecretError, Environment

from .config import AUDIENCES

CLIENT_CREDENTIALS = "client_credentials"
AUTHORIZATION_CODE = "authorization_code"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class Client(BaseModel):
    """One registered client system and the claims its tokens carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$", description="Public id.")
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the secret.")
    name: str = Field(default="", description="Who this client is, for people.")
    organisation: str | None = Field(
        default=None, pattern=r"^[A-Z0-9]{3,10}$", description="ODS code it acts for."
    )
    provider_type: ProviderType | None = Field(default=None, description="Its provider type.")
    roles: frozenset[Role] = Field(default=frozenset(), description="Roles granted in its tokens.")
    audiences: frozenset[str] = Field(min_length=1, description="Services it may call.")
    grant_types: frozenset[str] = Field(
        default=frozenset({CLIENT_CREDENTIALS}),
        description="client_credentials (a system acting for its organisation) and/or "
        "authorization_code (a web app acting for the person signed in).",
    )
    redirect_uris: list[str] = Field(
        default=[], description="Where sign-in may return (authorization_code)."
    )
    post_logout_redirect_uris: list[str] = Field(
        default=[], description="Where sign-out may return (RP-initiated logout)."
    )

    @model_validator(mode="after")
    def _a_system_acts_for_an_organisation(self) -> Client:
        if CLIENT_CREDENTIALS in self.grant_types and (not self.organisation or not self.roles):
            raise ValueError("a client_credentials client needs an organisation and roles")
        if AUTHORIZATION_CODE in self.grant_types and not self.redirect_uris:
            raise ValueError("an authorization_code client needs redirect_uris")
        return self

    def secret_matches(self, secret: str) -> bool:
        return hmac.compare_digest(sha256(secret), self.secret_sha256)

    def allows_redirect(self, uri: str) -> bool:
        """Sign-in may return to ``uri``: one of ``redirect_uris``."""
        return any(redirect_matches(registered, uri) for registered in self.redirect_uris)

    def allows_post_logout_redirect(self, uri: str) -> bool:
        return any(redirect_matches(r, uri) for r in self.post_logout_redirect_uris)


def redirect_matches(registered: str, uri: str) -> bool:
    """Exact match, except that a registered loopback URI without a port matches that URI on
    any port (RFC 8252 §7.3): the local stack and its tests put the portal on any free port."""
    if uri == registered:
        return True
    want, got = urlsplit(registered), urlsplit(uri)
    return (
        want.scheme == got.scheme == "http"
        and want.hostname in LOOPBACK
        and want.port is None
        and got.hostname == want.hostname
        and got.port is not None
        and (got.path, got.query, got.fragment) == (want.path, want.query, want.fragment)
    )


class Registry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clients: list[Client]

    def get(self, client_id: str) -> Client | None:
        return next((c for c in self.clients if c.client_id == client_id), None)


def sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def demo_secret(client_id: str) -> str:
    """The documented secret of a demo client (docs/security.md)."""
    return f"{client_id}-demo-secret"


def demo_registry() -> Registry:
    text = resources.files("issuer").joinpath("demo_clients.json").read_text()
    return Registry.model_validate_json(text)


def load_registry(path: Path | None, environment: Environment) -> Registry:
    """The clients of ``path``, or the demo clients when there is none (development only).
    Outside development a registry holding a demo secret is refused too."""
    if path is None:
        if environment is not Environment.DEVELOPMENT:
            raise DefaultSecretError(
                f"RX_ENV={environment.value} refuses the demo clients: set ISSUER_CLIENTS_FILE"
            )
        return demo_registry()
    registry = Registry.model_validate(json.loads(path.read_text()))
    unknown = sorted({a for c in registry.clients for a in c.audiences} - set(AUDIENCES))
    if unknown:
        raise ValueError(f"{path}: unknown audiences {unknown}; known: {list(AUDIENCES)}")
    if environment is not Environment.DEVELOPMENT:
        shipped = {c.secret_sha256 for c in demo_registry().clients}
        reused = sorted(c.client_id for c in registry.clients if c.secret_sha256 in shipped)
        if reused:
            raise DefaultSecretError(
                f"RX_ENV={environment.value} refuses demo secrets for clients {reused}"
            )
    return registry
