"""The pipeline's health for the ops console: consumer lag, outbox backlog, dead letters and
SLA clocks, read from every process's ``/metrics``."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ...adapters.pipeline import scrape, summarise
from .deps import CallerDep, ContainerDep

router = APIRouter(tags=["audit"])


class TargetPublic(BaseModel):
    target: str = Field(description="A process's /metrics address.")
    up: bool = Field(description="Whether it answered.")
    error: str | None = Field(default=None, description="Why not, if it did not.")


class LagPublic(BaseModel):
    group: str = Field(description="Consumer group.")
    topic: str
    partition: int
    lag: float = Field(description="Records on the partition the group has not committed.")


class OutboxPublic(BaseModel):
    relay: str = Field(description="The relay process, e.g. referrals-relay.")
    backlog: float = Field(description="Outbox rows not yet published.")
    oldest_age_seconds: float = Field(description="How long the oldest of them has waited.")


class DeadLettersPublic(BaseModel):
    group: str = Field(description="The consumer group that parked them.")
    topic: str = Field(description="The topic they came from (parked on <topic>.dlq).")
    count: float = Field(description="Parked since the consumer process started.")


class PipelineHealthPublic(BaseModel):
    targets: list[TargetPublic]
    lag: list[LagPublic]
    outbox: list[OutboxPublic]
    dead_letters: list[DeadLettersPublic]
    sla: dict[str, float] = Field(
        description="SLA clocks by state: pending, warned (past the warning), breached."
    )


@router.get("/audit/pipeline", response_model=PipelineHealthPublic)
async def pipeline_health(_caller: CallerDep, container: ContainerDep) -> PipelineHealthPublic:
    """Consumer lag per group and partition, outbox backlog per relay, dead letters and SLA
    clocks, from every process of the platform (``AUDIT_METRICS_TARGETS``) as Prometheus
    scrapes them; processes that do not answer are listed as down."""
    targets = [t.strip() for t in container.settings.metrics_targets.split(",") if t.strip()]
    health = summarise(await scrape(targets))
    return PipelineHealthPublic.model_validate(asdict(health))
