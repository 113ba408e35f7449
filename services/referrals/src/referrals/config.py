"""Settings from the environment (prefix REFERRALS_; Kafka address shared by all services)."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import SettingsConfigDict
from rx_web.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REFERRALS_", extra="ignore")

    database_url: str = "sqlite:///.data/referrals.db"
    port: int = 8001
    consumer_group: str = "referrals"
    max_body_bytes: int = 1_000_000


@lru_cache
def get_settings() -> Settings:
    return Settings()
