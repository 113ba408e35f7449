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

from pydantic import BaseModel, ConfigDict, Field
from rx_contracts import ProviderType, Role
from rx_web.settings import DefaultSecretError, Environment

from .config import AUDIENCES


class Client(BaseModel):
    """One registered client system and the claims its tokens carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$", description="Public id.")
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the secret.")
    name: str = Field(default="", description="Who this client is, for people.")
    organisation: str = Field(pattern=r"^[A-Z0-9]{3,10}$", description="ODS code it acts for.")
    provider_type: ProviderType | None = Field(default=None, description="Its provider type.")
    roles: frozenset[Role] = Field(min_length=1, description="Roles granted in its tokens.")
    audiences: frozenset[str] = Field(min_length=1, description="Services it may call.")

    def secret_matches(self, secret: str) -> bool:
        return hmac.compare_digest(sha256(secret), self.secret_sha256)


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
