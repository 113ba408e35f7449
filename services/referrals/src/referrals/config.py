"""Settings from the environment (prefix REFERRALS_; Kafka address shared by all services)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REFERRALS_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///.data/referrals.db",
        description="SQLAlchemy URL of this service's own database (PostgreSQL or SQLite).",
    )
    host: str = "127.0.0.1"
    port: int = 8001
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "REFERRALS_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        ),
    )
    consumer_group: str = "referrals"
    heartbeat_dir: Path = Path(".data/heartbeats")
    max_body_bytes: int = 1_000_000


@lru_cache
def get_settings() -> Settings:
    return Settings()
