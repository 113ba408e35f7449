"""Settings from the environment (prefix PORTAL_; ``RX_ENV`` shared with every process)."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from rx_web.settings import DefaultSecretError, Environment, refuse_default_secrets
from sqlalchemy.engine import make_url

DEMO_CLIENT_SECRET = "portal-demo-secret"
"""The demo portal client's secret at the local issuer (development only)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PORTAL_", extra="ignore", env_ignore_empty=True)

    host: str = "127.0.0.1"
    port: int = 8004
    url: str = Field(
        default="http://127.0.0.1:8004",
        description="Where browsers reach the portal (sign-in returns to <url>/auth/callback).",
    )
    database_url: str = Field(
        default="sqlite:///.data/portal.db", description="The portal's sessions, nothing else."
    )
    referrals_url: str = "http://127.0.0.1:8001"
    issuer_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The OpenID provider (its discovery document is under it); browsers go there "
        "to sign in.",
    )
    issuer_internal_url: str | None = Field(
        default=None,
        description="Where this process reaches the provider's token endpoint and keys, when "
        "not at issuer_url (containers calling each other by name).",
    )
    client_id: str = "portal"
    client_secret: SecretStr = SecretStr(DEMO_CLIENT_SECRET)
    session_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32)),
        description="Signs the session cookie; unset: random per start (everyone signs in "
        "again after a restart; several processes need one shared value).",
    )
    idle_timeout_seconds: int = Field(
        default=30 * 60, ge=1, description="A session unused this long ends."
    )
    worklist_poll_seconds: float = Field(
        default=5, gt=0, description="How often an open worklist asks for news."
    )
    assets_dir: Path = Field(
        default=Path(__file__).resolve().parents[2] / "node_modules",
        description="The npm packages the portal serves (npm ci in services/portal).",
    )
    rx_env: Environment = Field(default=Environment.PRODUCTION, validation_alias="RX_ENV")

    @model_validator(mode="after")
    def _no_demo_secret_outside_development(self) -> Settings:
        refuse_default_secrets(self.rx_env, {"database_url": make_url(self.database_url).password})
        if (
            self.rx_env is not Environment.DEVELOPMENT
            and self.client_secret.get_secret_value() == DEMO_CLIENT_SECRET
        ):
            raise DefaultSecretError(
                f"RX_ENV={self.rx_env.value} refuses the demo client secret: set "
                "PORTAL_CLIENT_SECRET"
            )
        return self

    @property
    def secure_cookies(self) -> bool:
        return self.url.startswith("https://")

    @property
    def issuer_backchannel(self) -> str:
        return (self.issuer_internal_url or self.issuer_url).rstrip("/")


@lru_cache
def get_settings() -> Settings:
    return Settings()
