"""Settings from the environment (prefix AUDIT_; Kafka address shared by all services)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from rx_contracts.topics import AUDIT_CHECKPOINTS
from rx_web.settings import ServiceSettings

EVERY_V1_TOPIC = r"^[a-z0-9-]+\.[a-z0-9-]+\.v[0-9]+$"
"""Every ``<owner>.<stream>.v<N>`` topic, so new ones are picked up; not the ``.dlq`` ones."""


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIT_", extra="ignore")

    database_url: str = "sqlite:///.data/audit.db"
    port: int = 8003
    consumer_group: str = "audit"
    topic_pattern: str = EVERY_V1_TOPIC
    checkpoint_topic: str = Field(
        default=AUDIT_CHECKPOINTS, description="Where chain heads are published and read back."
    )
    checkpoint_keys_file: Path = Field(
        default=Path(".data/audit/checkpoint-keys.json"),
        description="The checkpoint signing keys (a secret; newest first). The relay signs "
        "with the newest; every key is published and trusted. Made in development if missing; "
        "elsewhere make it with `python -m audit checkpoint-key rotate`.",
    )
    checkpoint_interval_s: float = Field(
        default=10.0, gt=0, description="How often the relay publishes the head, if it moved."
    )
    consumer_gather_ms: float = Field(
        default=200.0,
        ge=0,
        le=1000,
        description="The consumer's pacing: after a batch it reads on no earlier than this "
        "long after that batch's poll began, so the events arriving meanwhile are fetched and "
        "appended together: at low rates nearly every event would otherwise be a fetch and a "
        "transaction of its own. Entries reach the chain up to twice this much later; 0 reads "
        "on at once.",
    )
    stream_poll_s: float = Field(
        default=0.25, gt=0, description="How often a live stream looks for new entries."
    )
    stream_heartbeat_s: float = Field(
        default=15.0, gt=0, description="Idle time after which a live stream sends a comment."
    )
    metrics_targets: str = Field(
        default="",
        description="Comma-separated /metrics addresses of the platform's processes, read for "
        "the ops console's pipeline panel.",
    )
    console_token_url: str | None = Field(
        default=None,
        description="Where the ops console's page asks for tokens, as a browser reaches it; "
        "default <RX_TOKEN_ISSUER>/oauth2/token (set it when browsers see another address).",
    )
    console_notify_url: str | None = Field(
        default=None,
        description="Where the ops console's page reaches the notify API, as a browser does "
        "(e.g. http://127.0.0.1:8004); unset: the console shows no subscriptions.",
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
