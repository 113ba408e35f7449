"""Who is calling the routing API."""

from __future__ import annotations

from dataclasses import dataclass

from rx_contracts import Identity, Role


@dataclass(frozen=True)
class Caller:
    organisation: str
    roles: frozenset[Role]

    @classmethod
    def of(cls, identity: Identity) -> Caller:
        """The domain's view of an authenticated caller."""
        return cls(identity.organisation, identity.roles)
