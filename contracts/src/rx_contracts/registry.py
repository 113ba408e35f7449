"""Every payload model by its CloudEvents type, for consumers that parse what they receive."""

from __future__ import annotations

from . import events as ev
from .access import ReferralAccessed
from .admin import RoutingConfigChanged
from .audit import ChainCheckpointed
from .payload import Payload
from .sla import ReferralEscalated, SlaBreached, SlaWarning

EVENT_TYPES: dict[str, type[Payload]] = {
    cls.EVENT_TYPE: cls
    for cls in (
        ev.ReferralSubmitted,
        ev.ReferralAmended,
        ev.ReferralAccepted,
        ev.ReferralRejected,
        ev.ReferralRedirected,
        ev.ReferralStarted,
        ev.ReferralCompleted,
        ev.ReferralCancelled,
        ev.ReferralRerouted,
        ev.ReferralNhsNumberRecorded,
        ev.ReferralRouted,
        ev.ReferralUnroutable,
        ChainCheckpointed,
        SlaWarning,
        SlaBreached,
        ReferralEscalated,
        ReferralAccessed,
        RoutingConfigChanged,
    )
}
"""Every payload model by its CloudEvents type. A new payload is added here (and to
``channels``, which says where it travels)."""
