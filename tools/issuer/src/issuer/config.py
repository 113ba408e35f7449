"""Settings from the environment (prefix ISSUER_; ``RX_ENV`` shared with every process)."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from rx_web.settings import Environment

AUDIENCES = ("referrals", "routing", "audit", "notify")
"""One audience per service: a token for one service is refused by the others."""


class Settings(BaseSettings):
    # env_ignore_empty: compose passes ISSUER_CLIENTS_FILE= when no registry is given.
    model_config = SettingsConfigDict(env_prefix="ISSUER_", extra="ignore", env_ignore_empty=True)

    host: str = "127.0.0.1"
    port: int = 8000
    url: str = Field(
        default="http://127.0.0.1:8000",
        description="The issuer identifier (the tokens' iss); services expect it as RX_TOKEN_ISSUER.",
    )
    public_url: str | None = Field(
        default=None,
        description="Where browsers reach the issuer, when not at url (containers know it by "
        "name): the sign-in and sign-out endpoints are published at this address.",
    )
    keys_file: Path = Field(
        default=Path(".data/issuer/keys.json"),
        description="Signing keys (private; created on first start, rotated with rotate-key).",
    )
    clients_file: Path | None = Field(
        default=None,
        description="Registered clients (JSON); unset: the demo clients, development only.",
    )
    token_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    users_file: Path | None = Field(
        default=None,
        description="People who may sign in (JSON); unset: the demo users, development only.",
    )
    user_token_ttl_seconds: int = Field(
        default=3600,
        ge=60,
        le=86_400,
        description="Lifetime of a signed-in person's access and ID tokens: a web app's session "
        "ends with them.",
    )
    session_ttl_seconds: int = Field(
        default=8 * 3600,
        ge=60,
        description="How long a sign-in lasts here: a web app signing in again within it does "
        "not ask for the password.",
    )
    session_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32)),
        description="Signs the sign-in cookie; unset: a new random one each start, which "
        "signs everybody out on a restart.",
    )
    code_ttl_seconds: int = Field(default=60, ge=10, le=600)
    algorithm: str = Field(default="EdDSA", pattern="^(EdDSA|RS256)$")
    keys_kept: int = Field(
        default=3, ge=2, description="Keys published after a rotation (current + previous)."
    )
    rx_env: Environment = Field(default=Environment.PRODUCTION, validation_alias="RX_ENV")
    cors_origins: str = Field(
        default="",
        description="Comma-separated web origins whose pages may ask for tokens from a browser "
        "(the ops console, e.g. http://127.0.0.1:8003); none by default.",
    )

    @property
    def browser_url(self) -> str:
        return (self.public_url or self.url).rstrip("/")

    @property
    def allowed_origins(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]


@lru_cache
def get_settings() -> Settings:
    return Settings()
