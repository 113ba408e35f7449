"""Settings every service process reads; each service subclasses with its env prefix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings
from sqlalchemy.engine import make_url


class Environment(StrEnum):
    """``RX_ENV``: where a process runs. Outside development, shipped default secrets and the
    development identity headers are refused."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


KNOWN_DEFAULT_SECRETS: set[str] = {
    # docker-compose.yml's database passwords
    "referrals-dev",
    "routing-dev",
    "audit-dev",
    "postgres-dev",
}
"""Secrets this repository ships for development. Add a new default here when you add one, so
a production process that still uses it refuses to start."""


class DefaultSecretError(ValueError):
    """A process outside development was given a secret this repository ships."""


def refuse_default_secrets(
    environment: Environment,
    secrets: Mapping[str, str | SecretStr | None],
    defaults: Iterable[str] = (),
) -> None:
    """Raise naming each setting in ``secrets`` whose value is a shipped default (one of
    ``KNOWN_DEFAULT_SECRETS`` or ``defaults``), unless ``environment`` is development."""
    if environment is Environment.DEVELOPMENT:
        return
    known = KNOWN_DEFAULT_SECRETS | set(defaults)
    plain = {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in secrets.items()
    }
    found = sorted(name for name, value in plain.items() if value and value in known)
    if found:
        raise DefaultSecretError(
            f"RX_ENV={environment.value} refuses the development default secrets in "
            f"{', '.join(found)}: set your own"
        )


class ServiceSettings(BaseSettings):
    """Subclass with ``model_config = SettingsConfigDict(env_prefix="<SERVICE>_")`` and set the
    service's defaults for ``database_url``, ``port`` and ``consumer_group``."""

    database_url: str = Field(description="SQLAlchemy URL of the service's own database.")
    host: str = "127.0.0.1"
    port: int
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias="KAFKA_BOOTSTRAP_SERVERS",
        description="Shared by every service, so it has no prefix.",
    )
    consumer_group: str
    heartbeat_dir: Path = Path(".data/heartbeats")
    rx_env: Environment = Field(
        default=Environment.PRODUCTION,
        validation_alias="RX_ENV",
        description="Shared by every process; development allows shipped default secrets.",
    )

    @model_validator(mode="after")
    def _no_default_secrets(self) -> ServiceSettings:
        # The database password, and every setting whose name says it holds a secret.
        secrets: dict[str, str | SecretStr | None] = {
            "database_url": make_url(self.database_url).password
        }
        for name in type(self).model_fields:
            if any(word in name for word in ("password", "secret")):
                secrets[name] = getattr(self, name)
        refuse_default_secrets(self.rx_env, secrets)
        return self
