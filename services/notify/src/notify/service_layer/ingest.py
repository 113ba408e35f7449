"""Ingestion: a lifecycle event in, notifications out — inside the consumer's transaction.

Each event is stored once, then applied in its referral's order (held back until its
predecessor has been applied, see ``domain.referral``). Applying it updates the read model
and numbers it for every subscription that may hear of it: entitled to the referral in the
subscription's role before or after the event, of a kind its topic carries, passing its
filters. The number comes from the subscription's counter, moved in the same transaction as the
notification row is written, so numbers start at 1 and have no gaps."""

from __future__ import annotations

import logging

from rx_contracts import Envelope, EnvelopeError
from rx_messaging.consumer import PermanentError
from sqlmodel import Session

from ..adapters.repository import ReferralRepository
from ..domain.referral import Change, LifecycleEvent, Placement, ReferralView, apply, place
from ..domain.topics import DECISIONS, EVENT_KINDS, TOPIC_KINDS, Kind, Topic

log = logging.getLogger(__name__)


def lifecycle_event(envelope: Envelope) -> LifecycleEvent | None:
    """The event as notify keeps it, or None for a type it does not act on."""
    kind = EVENT_KINDS.get(envelope.type)
    if kind is None:
        return None
    try:
        envelope.payload()  # valid, or poison
    except EnvelopeError as exc:
        raise PermanentError(str(exc)) from exc
    return LifecycleEvent(
        event_id=envelope.id,
        type=envelope.type,
        kind=kind,
        referral_id=envelope.subject,
        # As sent, fields this contracts version does not know included (a sequence on a
        # routing decision from a newer routing service).
        data=dict(envelope.data),
        time=envelope.time,
        source=envelope.source,
    )


def ingest(session: Session, envelope: Envelope, data_json: str | None = None) -> int:
    """Apply one event (and whatever it unblocks); returns how many notifications it made.
    A repeat of an event already stored (the same event on a second topic) is dropped by the
    consumer's inbox before it gets here. ``data_json``: the event's data as the JSON text it
    came in (the record's value), if the caller has it.

    While no subscription can receive anything (none, or every one off or deleted, as this
    transaction first read them), the event is only stored, ``pending``: nobody can hear of
    it, and placing it can wait. The referral's pending events are placed, in the order they
    came and numbered for nobody, before its next event is applied in a transaction that has
    subscriptions to number for; so a subscription hears of exactly the events applied in
    transactions that read the subscriptions after it was created, as if every event had been
    placed when it came."""
    event = lifecycle_event(envelope)
    if event is None:
        return 0
    referrals = ReferralRepository.of(session)
    if not referrals.receivers():
        referrals.keep_pending(event, data_json)
        return 0
    view, pending = referrals.view_and_pending(event.referral_id)
    if pending:
        for earlier in referrals.pending(event.referral_id):
            _, view = _arrive(referrals, view, earlier, stored=True, heard=False)
    made, view = _arrive(referrals, view, event)
    return made


def _arrive(
    referrals: ReferralRepository,
    view: ReferralView | None,
    event: LifecycleEvent,
    *,
    stored: bool = False,
    heard: bool = True,
) -> tuple[int, ReferralView | None]:
    """Place one event, then the held ones it may have unblocked. ``stored``: the event has
    its row (pending); ``heard`` False: what it applies is numbered for nobody (it came while
    nobody could hear of it)."""
    made, view = _offer(referrals, view, event, new=view is None, stored=stored, heard=heard)
    # An applied event may be what held ones were waiting for.
    while view is not None and view.held:
        ready = [
            e for e in referrals.held(event.referral_id) if place(view, e) is not Placement.HOLD
        ]
        if not ready:
            break
        view.held -= 1
        count, view = _offer(referrals, view, ready[0], stored=True, heard=heard)
        made += count
    return made, view


def _offer(
    referrals: ReferralRepository,
    view: ReferralView | None,
    event: LifecycleEvent,
    *,
    new: bool = False,
    stored: bool = False,
    heard: bool = True,
) -> tuple[int, ReferralView | None]:
    placement = place(view, event)
    if placement is Placement.HOLD:
        referrals.store(event, "held", event.sequence, None, stored)
        if view is not None:
            view.held += 1
            referrals.save_view(view)
        return 0, view
    if placement is Placement.STALE:
        if view is not None and event.kind in DECISIONS and event.sequence is None:
            view.decided = max(view.decided, event.attempt or view.decided + 1)
        if view is not None:
            referrals.save_view(view)
        log.info("%s for referral %s is stale; nothing to tell", event.type, event.referral_id)
        referrals.store(event, "stale", event.sequence, None, stored, keep=False)
        return 0, view
    if placement is Placement.LATE:
        log.warning(
            "%s of referral %s at sequence %s arrived after that number was placed; delivered "
            "out of turn",
            event.type,
            event.referral_id,
            event.sequence,
        )
    change = apply(view, event, placement)
    if view is None:
        view = ReferralView.submitted(event)
        # Events held before the referral's first one arrived are counted now.
        view.held = len(referrals.held(event.referral_id))
    chosen = _receivers(referrals, change) if heard else []
    # The payload and state are kept for the notifications that will show them: an event
    # numbered for nobody now never is later (a subscription hears of what is applied after
    # it was made).
    referrals.store(
        event, placement.value, change.sequence, change.after, stored, keep=bool(chosen)
    )
    referrals.save_view(view, new=new)
    return len(referrals.number(chosen, event.event_id)), view


def _receivers(referrals: ReferralRepository, change: Change) -> list[str]:
    """The subscriptions that hear of ``change``: on a topic that carries its kind, entitled
    to the referral on that topic, passing their filters (``Subscription.receives``; the off
    ones are not among the receivers)."""
    receivers = referrals.receivers()
    if not receivers:
        return []
    return [
        sid
        for topic in _TOPICS[change.event.kind]
        for organisation in change.entitled(topic)
        for sid, filters in receivers.get((organisation, topic), ())
        if filters.passes(change.after)
    ]


_TOPICS: dict[Kind, tuple[Topic, ...]] = {
    kind: tuple(topic for topic in Topic if kind in TOPIC_KINDS[topic]) for kind in Kind
}
"""The topics that carry each kind of event."""
