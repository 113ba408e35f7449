"""Request dependencies: who is calling (and whether their roles allow the operation), the
unit of work.

All ``async def`` although none awaits: FastAPI would run a plain ``def`` dependency in its
thread pool, and that hand-over costs more than these functions do."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from rx_contracts import Identity, Role
from rx_web.identity import get_identity, reads_identity, require_roles

from ...domain.caller import Caller
from ...service_layer.unit_of_work import UnitOfWork


@reads_identity
async def get_caller(request: Request) -> Caller:
    """Any authenticated caller (the directory is public within the platform)."""
    return Caller.of(await get_identity(request))


AdminIdentity = Annotated[Identity, Depends(require_roles(Role.ADMIN))]
OpsOrAdminIdentity = Annotated[Identity, Depends(require_roles(Role.OPS, Role.ADMIN))]


async def get_admin(identity: AdminIdentity) -> Caller:
    """A caller with the admin role (403 otherwise)."""
    return Caller.of(identity)


async def get_ops_or_admin(identity: OpsOrAdminIdentity) -> Caller:
    """A caller with the ops or the admin role (403 otherwise)."""
    return Caller.of(identity)


async def get_uow(request: Request) -> UnitOfWork:
    uow: UnitOfWork = request.app.state.container.uow()
    return uow


CallerDep = Annotated[Caller, Depends(get_caller)]
Admin = Annotated[Caller, Depends(get_admin)]
OpsOrAdmin = Annotated[Caller, Depends(get_ops_or_admin)]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
