"""The routing API (``python -m routing api``): directory and decisions, read-only for now.
Any authenticated caller may read the directory; decisions are for ops and admin staff."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from pydantic import BaseModel
from rx_contracts import ProviderType, Role
from rx_web.app import service_app
from rx_web.identity import IdentityDep, require_roles
from sqlmodel import Session

from ...adapters.repository import RoutingRepository
from ...bootstrap import Container, bootstrap
from ...config import Settings, get_settings


def get_repo(request: Request) -> Iterator[RoutingRepository]:
    with Session(request.app.state.container.engine) as session:
        yield RoutingRepository(session)


Repo = Annotated[RoutingRepository, Depends(get_repo)]
STAFF = Depends(require_roles(Role.OPS, Role.ADMIN))


class OrganisationPublic(BaseModel):
    ods_code: str
    name: str
    provider_type: ProviderType
    localities: list[str]
    active: bool


class DecisionPublic(BaseModel):
    id: str
    referral_id: str
    attempt: int
    outcome: str
    assigned_org: str | None
    provider_type: str | None
    locality: str | None
    rule_id: str | None
    rule_version: int | None
    reason: str | None
    decided_at: datetime


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    app = service_app(
        "routing",
        "Provider directory and routing decisions.",
        lambda: container or bootstrap(settings or get_settings()),
    )

    @app.get("/organisations", response_model=list[OrganisationPublic], tags=["directory"])
    def organisations(repo: Repo, _caller: IdentityDep) -> list[OrganisationPublic]:
        """Every organisation in the provider directory."""
        orgs = repo.organisations()
        return [
            OrganisationPublic(
                ods_code=o.ods_code,
                name=o.name,
                provider_type=o.provider_type,
                localities=sorted(o.localities),
                active=o.active,
            )
            for o in sorted(orgs, key=lambda o: o.ods_code)
        ]

    @app.get(
        "/decisions",
        response_model=list[DecisionPublic],
        tags=["decisions"],
        dependencies=[STAFF],
    )
    def decisions(
        repo: Repo,
        referral_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[DecisionPublic]:
        """Routing decisions, newest first; filter by referral."""
        rows = repo.decisions(referral_id, limit)
        return [DecisionPublic.model_validate(r, from_attributes=True) for r in rows]

    return app
