"""Who is calling, and what they may do with a subscription."""

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
        return Actor(organisation=self.organisation, practitioner=self.practitioner)

    @property
    def is_ops(self) -> bool:
        return Role.OPS in self.roles

    @property
    def is_provider(self) -> bool:
        return Role.PROVIDER in self.roles

    def may_see(self, organisation: str) -> bool:
        """A provider system manages its own organisation's subscriptions; ops manage all."""
        return self.is_ops or (self.is_provider and organisation == self.organisation)
