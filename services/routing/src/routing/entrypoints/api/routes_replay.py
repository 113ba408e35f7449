"""What-if replay of proposed rules over recorded referrals (ops and admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ...domain.errors import Collector
from ...service_layer import replay as replaying
from .deps import OpsOrAdmin, Uow
from .schemas import ReplayRequest

router = APIRouter(tags=["replay"])


@router.post("/replay", description=replaying.__doc__)
def replay(body: ReplayRequest, uow: Uow, _caller: OpsOrAdmin) -> dict[str, Any]:
    """Replay the referrals submitted in the window under the proposed rules, publishing
    nothing; report assignments per organisation, unroutable referrals and acceptance
    breaches, proposed beside actual."""
    errors = Collector()
    for name, value in (("from", body.from_), ("to", body.to)):
        if value.tzinfo is None:
            errors.add(name, "timezone_required", "give the offset, e.g. 2026-11-23T09:00:00Z")
    if not errors.errors and body.to <= body.from_:
        errors.add("to", "window_order", "to must be after from")
    errors.raise_if_any()
    proposed = replaying.proposal(
        [
            replaying.ProposedRuleSet(
                r.locality, [rule.model_dump(by_alias=True) for rule in r.rules]
            )
            for r in body.rule_sets
        ],
        uow,
    )
    return replaying.replay(proposed, body.from_, body.to, uow).as_json()
