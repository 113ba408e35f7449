"""Request dependencies: who is calling, the unit of work, the container, the entry filter.

All ``async def`` although none awaits: FastAPI would run a plain ``def`` dependency in its
thread pool, and that hand-over costs more than these functions do."""

from __future__ import annotations

from typing import Annotated, TypeAlias

from fastapi import Depends, Query, Request
from pydantic import StringConstraints
from rx_contracts import Identity, Role
from rx_web.identity import require_roles
from rx_web.params import IsoDateTime

from ...adapters.queries import EntryFilter
from ...bootstrap import Container
from ...service_layer.unit_of_work import UnitOfWork

Caller: TypeAlias = Identity
"""Who is calling. The audit log is for operations staff only, so every caller holds the ops
role; the domain needs nothing more of them."""


async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


async def get_uow(request: Request) -> UnitOfWork:
    uow: UnitOfWork = request.app.state.container.uow()
    return uow


ODS_OR_PLATFORM = r"^[A-Z0-9]{2,10}$"
EventType: TypeAlias = Annotated[
    str, StringConstraints(pattern=r"^rx\.[a-z]+\.[A-Za-z]+\.v[0-9]+$")
]
"""A CloudEvents type as the contracts name them: rx.<service>.<EventName>.v<version>."""
"""An ODS code, or RX (the platform)."""

OrganisationParam = Annotated[
    str | None,
    Query(
        description="Only what concerns this organisation (ODS code; RX for the platform): "
        "every event of the referrals it sent or holds or held (as referrer, assignee, "
        "decliner, target or actor, in any event of the referral), and the events about no "
        "referral that name it.",
        pattern=ODS_OR_PLATFORM,
    ),
]


async def get_entry_filter(
    referral_id: Annotated[str | None, Query(description="Only this referral's events.")] = None,
    organisation: OrganisationParam = None,
    type: Annotated[
        list[EventType] | None,
        Query(
            description="Only events of these CloudEvents types (repeat for several), such as "
            "rx.referrals.ReferralSubmitted.v1; anything not shaped like an event type is "
            "refused with 422."
        ),
    ] = None,
    since: Annotated[
        IsoDateTime | None, Query(description="Events that happened at or after this time.")
    ] = None,
    until: Annotated[IsoDateTime | None, Query(description="Events that happened before this.")] = (
        None
    ),
) -> EntryFilter:
    return EntryFilter(referral_id, organisation, tuple(type or ()), since, until)


CallerDep = Annotated[Caller, Depends(require_roles(Role.OPS))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
ContainerDep = Annotated[Container, Depends(get_container)]
Filter = Annotated[EntryFilter, Depends(get_entry_filter)]
