"""Who is calling an API: the claims every service reads from a caller's credentials.

Provider systems act for one organisation (its ODS code and provider type); operations and
administration staff carry the ``ops`` / ``admin`` roles. The development scheme (headers) and
signed tokens both produce an :class:`Identity`, so routes never depend on the scheme."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from .vocabulary import ProviderType


class Role(StrEnum):
    """What a caller may do across the platform; object-level rules narrow it per record."""

    PROVIDER = "provider"
    """A provider system acting for its organisation (create, act on assigned referrals)."""
    OPS = "ops"
    """Operations staff: read everything, re-route, watch the audit stream."""
    ADMIN = "admin"
    """Directory and rule administration."""


class Identity(BaseModel):
    """An authenticated caller."""

    model_config = ConfigDict(frozen=True)

    organisation: str = Field(
        pattern=r"^[A-Z0-9]{3,10}$",
        description="ODS code of the organisation the caller acts for.",
        examples=["B81001"],
    )
    roles: frozenset[Role] = Field(description="Roles granted to the caller.")
    provider_type: ProviderType | None = Field(
        default=None, description="Provider type of the caller's organisation, where known."
    )
    practitioner: str | None = Field(
        default=None,
        max_length=64,
        description="Professional identifier of the person acting, where one is.",
        examples=["G1234567"],
    )
    client_id: str | None = Field(
        default=None, description="The registered client that authenticated, where known."
    )

    def has(self, *roles: Role) -> bool:
        """Whether the caller holds at least one of ``roles``."""
        return any(role in self.roles for role in roles)
