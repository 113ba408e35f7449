"""Who is calling, and how they relate to a referral."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rx_contracts import Actor, Identity, Role

__all__ = ["Caller", "Party", "Role"]


class Party(StrEnum):
    """A caller's relation to one referral; decides what it may see and do."""

    REFERRER = "referrer"
    ASSIGNED = "assigned"
    OPS = "ops"


@dataclass(frozen=True)
class Caller:
    organisation: str
    roles: frozenset[Role]
    practitioner: str | None = None
    client_id: str | None = None
    """The registered client system calling, recorded with each access to patient data."""

    @classmethod
    def of(cls, identity: Identity) -> Caller:
        """The domain's view of an authenticated caller."""
        return cls(identity.organisation, identity.roles, identity.practitioner, identity.client_id)

    @property
    def actor(self) -> Actor:
        return Actor(organisation=self.organisation, practitioner=self.practitioner)

    def parties(self, referrer_org: str, assigned_org: str | None) -> frozenset[Party]:
        """Providers act for their organisation; ops staff act as ops whatever their org."""
        found: set[Party] = set()
        if Role.PROVIDER in self.roles:
            if self.organisation == referrer_org:
                found.add(Party.REFERRER)
            if assigned_org is not None and self.organisation == assigned_org:
                found.add(Party.ASSIGNED)
        if Role.OPS in self.roles:
            found.add(Party.OPS)
        return frozenset(found)
