"""Settings from the environment (prefix NOTIFY_; Kafka address shared by all services)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict
from rx_messaging.worker import pace_setting
from rx_web.settings import Environment, ServiceSettings

CONSUMER_PACE_MS = 80.0


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFY_", extra="ignore")

    database_url: str = "sqlite:///.data/notify.db"
    port: int = 8005
    consumer_group: str = "notify"
    max_body_bytes: int = 100_000
    consumer_pace_ms: float = pace_setting(CONSUMER_PACE_MS, "worker's ingestion")
    public_url: str = Field(
        default="http://127.0.0.1:8005",
        description="This service's address as subscribers reach it: FHIR references to "
        "Subscription resources and $status/$events links are built on it.",
    )
    referrals_fhir_base: str = Field(
        default="http://127.0.0.1:8001/fhir/R4",
        description="The referrals service's FHIR base: notification focus references point "
        "there (Task/<referral id>), so a receiver reads the referral with its own token.",
    )
    retry_for_seconds: float = Field(
        default=86_400,
        ge=60,
        description="How long a failing endpoint is retried before its subscription turns "
        "'error' (its events stay fetchable with $events). At least a day in production.",
    )
    retry_first_seconds: float = Field(default=1.0, gt=0, description="First retry delay.")
    retry_max_seconds: float = Field(
        default=600.0, gt=0, description="Longest delay between two retries (before jitter)."
    )
    delivery_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="Longest wait for an endpoint's answer."
    )
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    max_in_flight: int = Field(
        default=64, ge=1, description="Deliveries in flight at once (one per subscription)."
    )
    idle_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often an idle delivery worker looks for work made by other "
        "processes (API changes, other workers' ingestion); its own ingestion wakes it at once.",
    )
    lease_seconds: float = Field(
        default=120.0, gt=0, description="How long a worker holds a subscription it delivers."
    )
    worker_name: str | None = Field(
        default=None,
        description="Names this delivery worker's leases; default the host name. A restarted "
        "worker takes its own leases back at once, so give each worker of a host its own.",
    )
    secret_overlap_seconds: int = Field(
        default=86_400, ge=0, description="Default time both secrets sign after a rotation."
    )
    cors_origins: str = Field(
        default="",
        description="Comma-separated web origins whose pages may read this API from a browser "
        "(the ops console, e.g. http://127.0.0.1:8003); none by default.",
    )
    allow_loopback: bool = Field(
        default=False,
        description="Allow endpoints on loopback addresses (and plain http to them). "
        "Development only.",
    )
    allowed_networks: list[str] = Field(
        default_factory=list,
        description="Address ranges (CIDR) endpoints may resolve to although they are private "
        "or link-local. Development only.",
    )

    @model_validator(mode="after")
    def _allow_lists_only_in_development(self) -> Settings:
        if self.rx_env is not Environment.DEVELOPMENT and (
            self.allow_loopback or self.allowed_networks
        ):
            raise ValueError(
                f"NOTIFY_ALLOW_LOOPBACK / NOTIFY_ALLOWED_NETWORKS are refused with "
                f"RX_ENV={self.rx_env.value}: endpoints must be public https addresses"
            )
        return self

    @property
    def allowed_origins(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]


@lru_cache
def get_settings() -> Settings:
    return Settings()
