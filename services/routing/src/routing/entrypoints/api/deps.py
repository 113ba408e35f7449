"""Request dependencies: a database session, who may do what."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from rx_contracts import Identity, Role
from rx_web.identity import IdentityDep, require_roles
from sqlmodel import Session

from ...bootstrap import Container


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def get_session(request: Request) -> Iterator[Session]:
    with Session(get_container(request).engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
ContainerDep = Annotated[Container, Depends(get_container)]
Reader = IdentityDep
"""Any authenticated caller (the directory is public within the platform)."""
Admin = Annotated[Identity, Depends(require_roles(Role.ADMIN))]
OpsOrAdmin = Annotated[Identity, Depends(require_roles(Role.OPS, Role.ADMIN))]
