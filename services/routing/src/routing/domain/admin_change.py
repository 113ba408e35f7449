"""Administrative changes as events: what an administrator changed, before and after.

Pure: the service layer takes the snapshots (the administered fields, as the API shows them)
inside the change's own transaction and stages the event with it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rx_contracts import Actor, AdminAction, AdminSubject, RoutingConfigChanged, new_id

PLATFORM = Actor(organisation="RX")
"""The actor of changes the platform makes itself (the demo seed)."""


def config_change(
    subject: AdminSubject,
    subject_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    by: Actor,
    at: datetime,
    action: AdminAction | None = None,
) -> RoutingConfigChanged | None:
    """The event of a change from ``before`` (None: it did not exist) to ``after``; None if
    nothing changed, so re-applying the same settings leaves no trace. ``action`` defaults to
    created or replaced."""
    if before == after:
        return None
    if action is None:
        action = AdminAction.CREATED if before is None else AdminAction.REPLACED
    return RoutingConfigChanged(
        change_id=new_id(),
        actor=by,
        subject=subject,
        subject_id=subject_id,
        action=action,
        before=before,
        after=after,
        changed_at=at,
    )
