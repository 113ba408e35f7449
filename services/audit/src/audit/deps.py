"""FastAPI dependencies of the audit routes: the database, the caller, the filters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from rx_contracts import Identity, Role
from rx_web.identity import require_roles
from rx_web.params import IsoDateTime
from sqlalchemy.engine import Connection

from .bootstrap import Container
from .queries import EntryFilter

OpsCaller = Annotated[Identity, Depends(require_roles(Role.OPS))]
"""Every audit route is for operations staff only."""


def container(request: Request) -> Container:
    return request.app.state.container  # type: ignore[no-any-return]


def connection(request: Request) -> Iterator[Connection]:
    with container(request).engine.connect() as conn:
        yield conn


Db = Annotated[Connection, Depends(connection)]
Services = Annotated[Container, Depends(container)]


def entry_filter(
    referral_id: Annotated[str | None, Query(description="Only this referral's events.")] = None,
    organisation: Annotated[
        str | None,
        Query(
            description="Only events concerning this organisation (ODS code) as actor, "
            "referrer, assignee, decliner or target.",
            pattern=r"^[A-Z0-9]{2,10}$",
        ),
    ] = None,
    type: Annotated[
        list[str] | None,
        Query(description="Only events of these CloudEvents types (repeat for several)."),
    ] = None,
    since: Annotated[
        IsoDateTime | None, Query(description="Events that happened at or after this time.")
    ] = None,
    until: Annotated[IsoDateTime | None, Query(description="Events that happened before this.")] = (
        None
    ),
) -> EntryFilter:
    return EntryFilter(referral_id, organisation, tuple(type or ()), since, until)


Filter = Annotated[EntryFilter, Depends(entry_filter)]
