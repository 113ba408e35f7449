"""Who is calling: a FastAPI dependency every service's routes use, and role checks.

The caller is authenticated by :mod:`rx_web.auth` (a bearer token from the issuer; the
development headers only where explicitly enabled). Routes depend only on
:data:`IdentityDep` / :func:`require_roles` (or a dependency marked :func:`reads_identity`),
so the scheme never shows in a route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from rx_contracts import Identity, Role

from .auth import PRACTITIONER_PATTERN, STATE_KEY, Authenticator
from .problems import Problem

_bearer = HTTPBearer(
    auto_error=False,
    description="An access token from the issuer's /oauth2/token (client credentials) "
    "for this service's audience.",
)


def documented_identity(
    _token: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
    _practitioner: Annotated[
        str | None,
        Header(
            alias="X-Practitioner",
            description="Professional id of the person acting, as your system knows them.",
            examples=["G1234567"],
            pattern=PRACTITIONER_PATTERN,
        ),
    ] = None,
) -> None:
    """Never called: what :func:`get_identity` reads, as the API documentation shows it on
    every route that depends on it (the bearer scheme and X-Practitioner; see
    :func:`rx_web.openapi.document_common_answers`)."""


async def get_identity(request: Request) -> Identity:
    """The caller's identity; 401 problem+json when it is missing or not valid here, 422 for
    an X-Practitioner that breaks its documented pattern.

    The :class:`~rx_web.auth.Authenticate` middleware has read the Authorization and
    X-Practitioner headers already, so FastAPI is not asked to solve or validate them again
    on every request: they are declared on :func:`documented_identity` for the document."""
    outcome = getattr(request.state, STATE_KEY, None)
    if outcome is None:  # an app without the middleware (a bare test app)
        authenticator: Authenticator = request.app.state.authenticator
        outcome = await authenticator.authenticate(request.headers)
    if isinstance(outcome, Problem):
        raise outcome
    return outcome


IdentityDep = Annotated[Identity, Depends(get_identity)]

D = TypeVar("D", bound=Callable[..., Any])


def reads_identity(dependency: D) -> D:
    """Mark ``dependency`` as one that reads the caller itself (``await get_identity(request)``)
    rather than depending on :data:`IdentityDep`: one dependency fewer for FastAPI to solve on
    every request (each costs more than what it does). The API document (401, the bearer
    scheme, X-Practitioner after the dependency's own parameters) and the authorisation tests
    treat it as depending on :func:`get_identity` (:func:`learns_identity`)."""
    dependency.reads_identity = True  # type: ignore[attr-defined]
    return dependency


def learns_identity(call: Callable[..., Any] | None) -> bool:
    """Whether a dependency learns the caller: :func:`get_identity` or a :func:`reads_identity`
    one."""
    return call is get_identity or getattr(call, "reads_identity", False) is True


def require_roles(*roles: Role) -> Callable[[Request], Awaitable[Identity]]:
    """A dependency that lets through callers holding at least one of ``roles`` (403 otherwise):
    ``caller: Annotated[Identity, Depends(require_roles(Role.OPS))]``. The check carries its
    roles as ``required_roles``, so tests can tell from a route table what a route needs."""
    allowed = ", ".join(sorted(r.value for r in roles))

    @reads_identity
    async def check(request: Request) -> Identity:
        identity = await get_identity(request)
        if not identity.has(*roles):
            raise Problem(403, "Forbidden", f"this operation needs one of the roles: {allowed}")
        return identity

    check.required_roles = frozenset(roles)  # type: ignore[attr-defined]
    return check
