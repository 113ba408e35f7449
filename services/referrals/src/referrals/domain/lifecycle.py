"""The one state machine every organisation's referrals follow (names map to FHIR Task status).

submitted ──routed──▶ routed ──accept──▶ accepted ──start──▶ in_progress ──complete──▶ completed
    │                   ├──reject───▶ submitted (back to routing, that organisation excluded)
    │                   └──redirect─▶ submitted (back to routing, to a named type or organisation)
    └──no route──▶ unroutable ──reroute (ops)──▶ submitted
cancel (referrer) from any state that is not completed or cancelled ──▶ cancelled
record-nhs-number (referrer) in the same states as cancel; the status does not change
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rx_contracts import ReferralStatus as S

from .caller import Party


class Action(StrEnum):
    """What a caller can ask for; each is its own API operation."""

    AMEND = "amend"
    CANCEL = "cancel"
    ACCEPT = "accept"
    REJECT = "reject"
    REDIRECT = "redirect"
    START = "start"
    COMPLETE = "complete"
    REROUTE = "reroute"
    RECORD_NHS_NUMBER = "record-nhs-number"


@dataclass(frozen=True)
class Rule:
    by: Party
    from_states: frozenset[S]
    to: S | None  # None: the status does not change (amend)


RULES: dict[Action, Rule] = {
    Action.AMEND: Rule(Party.REFERRER, frozenset({S.SUBMITTED, S.ROUTED}), None),
    Action.CANCEL: Rule(
        Party.REFERRER,
        frozenset({S.SUBMITTED, S.ROUTED, S.ACCEPTED, S.IN_PROGRESS, S.UNROUTABLE}),
        S.CANCELLED,
    ),
    Action.ACCEPT: Rule(Party.ASSIGNED, frozenset({S.ROUTED}), S.ACCEPTED),
    Action.REJECT: Rule(Party.ASSIGNED, frozenset({S.ROUTED}), S.SUBMITTED),
    Action.REDIRECT: Rule(Party.ASSIGNED, frozenset({S.ROUTED}), S.SUBMITTED),
    Action.START: Rule(Party.ASSIGNED, frozenset({S.ACCEPTED}), S.IN_PROGRESS),
    Action.COMPLETE: Rule(Party.ASSIGNED, frozenset({S.IN_PROGRESS}), S.COMPLETED),
    Action.REROUTE: Rule(Party.OPS, frozenset({S.SUBMITTED, S.ROUTED, S.UNROUTABLE}), S.SUBMITTED),
    # Identity: the referrer adds a traced NHS number (or its verification) until the end.
    Action.RECORD_NHS_NUMBER: Rule(
        Party.REFERRER,
        frozenset({S.SUBMITTED, S.ROUTED, S.ACCEPTED, S.IN_PROGRESS, S.UNROUTABLE}),
        None,
    ),
}

TERMINAL = frozenset({S.COMPLETED, S.CANCELLED})


def allowed(status: S, parties: frozenset[Party]) -> list[Action]:
    """The actions these parties may take on a referral in ``status``, in a stable order."""
    return [a for a, rule in RULES.items() if rule.by in parties and status in rule.from_states]
