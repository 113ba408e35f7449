"""Who is calling the routing API."""

from __future__ import annotations

from dataclasses import dataclass

from rx_contracts import Actor, Identity, Role


@dataclass(frozen=True)
class Caller:
    organisation: str
    roles: frozenset[Role]
    practitioner: str | None = None

    @classmethod
    def of(cls, identity: Identity) -> Caller:
        """The domain's view of an authenticated caller."""
        return cls(identity.organisation, identity.roles, identity.practitioner)

    @property
    def actor(self) -> Actor:
        """The caller as the actor of the events its changes publish."""
        return Actor(organisation=self.organisation, practitioner=self.practitioner)
