"""The one state machine every organisation's referrals follow (names map to FHIR Task status).

submitted ──routed──▶ routed ──accept──▶ accepted ──start──▶ in_progress ──complete──▶ completed
    │                   ├──reject───▶ submitted (back to routing, that organisation excluded)
    │                   ├──redirect─▶ submitted (back to routing, to a named type or organisation)
    │                   └──request-info─▶ info_requested ──provide-info (referrer)──▶ routed
    └──no route──▶ unroutable ──reroute (ops)──▶ submitted
accepted, in_progress ──fail──▶ failed (could not deliver); report-progress keeps the status
cancel (referrer) from any state that is not an end (completed, cancelled, failed) ──▶ cancelled
message (referrer or assigned) at any state that is not an end; the status stays
record-nhs-number (referrer or assigned) at any state that is not an end; the status stays
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
    REQUEST_INFO = "request-info"
    PROVIDE_INFO = "provide-info"
    MESSAGE = "message"
    REPORT_PROGRESS = "report-progress"
    FAIL = "fail"
    RECORD_NHS_NUMBER = "record-nhs-number"


@dataclass(frozen=True)
class Rule:
    by: frozenset[Party]
    from_states: frozenset[S]
    to: S | None  # None: the status does not change (amend, message, report-progress)


def _rule(by: Party | tuple[Party, ...], states: set[S], to: S | None) -> Rule:
    return Rule(frozenset(by if isinstance(by, tuple) else (by,)), frozenset(states), to)


TERMINAL = frozenset({S.COMPLETED, S.CANCELLED, S.FAILED})
OPEN = frozenset(S) - TERMINAL
BEFORE_ACCEPTANCE = {S.SUBMITTED, S.ROUTED, S.INFO_REQUESTED}
OFFERED = {S.ROUTED, S.INFO_REQUESTED}
"""Held by an organisation that has not accepted it (asking a question counts)."""
WORKING = {S.ACCEPTED, S.IN_PROGRESS}

RULES: dict[Action, Rule] = {
    Action.AMEND: _rule(Party.REFERRER, BEFORE_ACCEPTANCE, None),
    Action.CANCEL: _rule(Party.REFERRER, set(OPEN), S.CANCELLED),
    Action.ACCEPT: _rule(Party.ASSIGNED, {S.ROUTED}, S.ACCEPTED),
    Action.REJECT: _rule(Party.ASSIGNED, OFFERED, S.SUBMITTED),
    Action.REDIRECT: _rule(Party.ASSIGNED, OFFERED, S.SUBMITTED),
    Action.START: _rule(Party.ASSIGNED, {S.ACCEPTED}, S.IN_PROGRESS),
    Action.COMPLETE: _rule(Party.ASSIGNED, {S.IN_PROGRESS}, S.COMPLETED),
    Action.REROUTE: _rule(Party.OPS, {S.SUBMITTED, *OFFERED, S.UNROUTABLE}, S.SUBMITTED),
    Action.REQUEST_INFO: _rule(Party.ASSIGNED, {S.ROUTED}, S.INFO_REQUESTED),
    Action.PROVIDE_INFO: _rule(Party.REFERRER, {S.INFO_REQUESTED}, S.ROUTED),
    Action.MESSAGE: _rule((Party.REFERRER, Party.ASSIGNED), set(OPEN), None),
    Action.REPORT_PROGRESS: _rule(Party.ASSIGNED, WORKING, None),
    Action.FAIL: _rule(Party.ASSIGNED, WORKING, S.FAILED),
    # Identity: whoever traces the person adds the NHS number (or its verification) until the
    # end: the referrer, or the organisation holding the referral (social care often traces
    # people referred without one). Each recording is its own event, naming who recorded it.
    Action.RECORD_NHS_NUMBER: _rule((Party.REFERRER, Party.ASSIGNED), set(OPEN), None),
}


def allowed(status: S, parties: frozenset[Party]) -> list[Action]:
    """The actions these parties may take on a referral in ``status``, in a stable order."""
    return [a for a, rule in RULES.items() if rule.by & parties and status in rule.from_states]
