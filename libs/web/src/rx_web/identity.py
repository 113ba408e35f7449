"""Who is calling: a FastAPI dependency every service's routes use, and role checks.

Dependencies here are ``async def`` although they never await: FastAPI runs a plain ``def``
dependency in its thread pool, a hand-over that costs more than the work itself.

Until signed tokens arrive this is the development scheme: the caller names its organisation
and roles in headers. Routes depend only on :data:`IdentityDep` / :func:`require_roles`, so
replacing the scheme changes no route."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header
from rx_contracts import Identity, ProviderType, Role

from .problems import Problem

_ODS = re.compile(r"^[A-Z0-9]{3,10}$")


async def get_identity(
    x_organisation: Annotated[
        str | None,
        Header(
            description="Development identity: ODS code of the calling organisation.",
            examples=["B81001"],
        ),
    ] = None,
    x_roles: Annotated[
        str,
        Header(description="Development identity: comma-separated roles (provider, ops, admin)."),
    ] = "provider",
    x_provider_type: Annotated[
        str | None,
        Header(description="Development identity: provider type of the calling organisation."),
    ] = None,
    x_practitioner: Annotated[
        str | None, Header(description="Professional id of the practitioner acting.", max_length=64)
    ] = None,
) -> Identity:
    """The caller's identity; 401 problem+json when it is missing or malformed."""
    if not x_organisation:
        raise Problem(401, "Unauthenticated", "send X-Organisation (your ODS code) and X-Roles")
    organisation = x_organisation.strip().upper()
    if not _ODS.fullmatch(organisation):
        raise Problem(
            401,
            "Unauthenticated",
            f"bad identity headers: X-Organisation {x_organisation!r} is not an ODS code "
            "(3-10 letters and digits)",
        )
    try:
        roles = frozenset(Role(r.strip()) for r in x_roles.split(",") if r.strip())
        provider_type = ProviderType(x_provider_type) if x_provider_type else None
    except ValueError as exc:
        raise Problem(401, "Unauthenticated", f"bad identity headers: {exc}") from exc
    return Identity(
        organisation=organisation,
        roles=roles,
        provider_type=provider_type,
        practitioner=x_practitioner,
    )


IdentityDep = Annotated[Identity, Depends(get_identity)]


def require_roles(*roles: Role) -> Callable[[Identity], Awaitable[Identity]]:
    """A dependency that lets through callers holding at least one of ``roles`` (403 otherwise):
    ``caller: Annotated[Identity, Depends(require_roles(Role.OPS))]``."""
    allowed = ", ".join(sorted(r.value for r in roles))

    async def check(identity: IdentityDep) -> Identity:
        if not identity.has(*roles):
            raise Problem(403, "Forbidden", f"this operation needs one of the roles: {allowed}")
        return identity

    return check
