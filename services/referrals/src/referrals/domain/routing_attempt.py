"""Which routing decision a referral is waiting for.

Each step that sends a referral to routing (submission, rejection, redirection, re-routing)
reserves the next per-referral sequence number for routing's decision on that attempt, and
routing numbers its decision with it. A decision with another number answers an attempt that
has since been replaced (ops re-routed the referral while routing was still deciding) and must
not assign the referral."""

from __future__ import annotations

from collections.abc import Iterable

from .lifecycle import Action
from .model import HistoryEntry

SENDS_TO_ROUTING = frozenset({"submit", Action.REJECT, Action.REDIRECT, Action.REROUTE})
"""History actions after which the referral waits for a routing decision."""


def awaited_decision(history: Iterable[HistoryEntry]) -> int | None:
    """The sequence number reserved for routing's decision on the current attempt: the one
    after the latest step that sent the referral to routing (None if none did)."""
    sent = [entry.sequence for entry in history if entry.action in SENDS_TO_ROUTING]
    return max(sent) + 1 if sent else None


def answers_current_attempt(decision_sequence: int | None, awaited: int | None) -> bool:
    """Whether a decision numbered ``decision_sequence`` answers the attempt awaited. A
    decision without a number (from a routing service that does not number its decisions)
    cannot be told apart and is taken as the answer."""
    return decision_sequence is None or awaited is None or decision_sequence == awaited
