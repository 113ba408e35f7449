"""Every payload model by its CloudEvents type, for consumers that parse what they receive."""

from __future__ import annotations

from . import events as ev
from .access import ReferralAccessed
from .admin import RoutingConfigChanged
from .audit import ChainCheckpointed
from .notify import NOTIFY_EVENTS
from .payload import Payload
from .sla import ReferralEscalated, SlaBreached, SlaWarning

_PAYLOADS: tuple[type[Payload], ...] = (
    ev.ReferralSubmitted,
    ev.ReferralAmended,
    ev.ReferralAccepted,
    ev.ReferralRejected,
    ev.ReferralRedirected,
    ev.ReferralStarted,
    ev.ReferralCompleted,
    ev.ReferralCancelled,
    ev.ReferralRerouted,
    ev.ReferralInfoRequested,
    ev.ReferralInfoProvided,
    ev.ReferralMessageAdded,
    ev.ReferralProgressReported,
    ev.ReferralFailed,
    ev.ReferralNhsNumberRecorded,
    ev.ReferralRouted,
    ev.ReferralUnroutable,
    ChainCheckpointed,
    SlaWarning,
    SlaBreached,
    ReferralEscalated,
    ReferralAccessed,
    RoutingConfigChanged,
    *NOTIFY_EVENTS,
)

EVENT_TYPES: dict[str, type[Payload]] = {cls.EVENT_TYPE: cls for cls in _PAYLOADS}
"""Every payload model by its CloudEvents type. A new payload is added here (and to
``channels``, which says where it travels)."""
