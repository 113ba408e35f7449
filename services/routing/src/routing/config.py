"""Settings from the environment (prefix ROUTING_; Kafka address shared by all services)."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import SettingsConfigDict
from rx_web.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTING_", extra="ignore")

    database_url: str = "sqlite:///.data/routing.db"
    port: int = 8002
    consumer_group: str = "routing"


@lru_cache
def get_settings() -> Settings:
    return Settings()
