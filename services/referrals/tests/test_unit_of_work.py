"""Units of work nest: a handler run inside an open one (an idempotent POST's) writes nothing
until the outer commit, which stores the change, its event and the response together."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from referrals.adapters.idempotency import IdempotentResponse, StoredResponse
from referrals.bootstrap import bootstrap
from referrals.config import Settings
from referrals.domain.caller import Caller, Role
from referrals.domain.model import Patient
from referrals.service_layer import handlers
from referrals.service_layer.unit_of_work import UnitOfWork
from rx_contracts import CohortFlags, Priority, ServiceType
from rx_messaging.wake import commit_signal
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

GP = Caller("B81001", frozenset({Role.PROVIDER}))
CMD = handlers.SubmitReferral(
    "B81001",
    Patient("BS5 0AA"),
    ServiceType.URGENT_COMMUNITY_RESPONSE,
    Priority.URGENT,
    CohortFlags(),
)


@pytest.fixture
def container(database_url: str):
    container = bootstrap(Settings(database_url=database_url))
    yield container
    container.engine.dispose()


def remembered(key: str, referral_id: str) -> IdempotentResponse:
    return IdempotentResponse("B81001", key, "fp", StoredResponse(201, {"id": referral_id}, {}))


def test_the_outer_commit_stores_the_change_and_the_response_together(container) -> None:
    uow = container.uow()
    with uow:
        referral = handlers.submit_referral(CMD, GP, uow)
        with container.uow() as other:
            assert other.referrals.get(referral.id) is None, "the handler's commit joined"
        uow.commit(remember=remembered("k-1", referral.id))
    with container.uow() as after:
        assert after.referrals.get(referral.id) is not None
        stored = after.idempotency_keys.get("B81001", "k-1")
    assert stored == remembered("k-1", referral.id)


def test_a_failure_after_the_handler_leaves_nothing_behind(container) -> None:
    uow = container.uow()
    with pytest.raises(RuntimeError), uow:
        referral = handlers.submit_referral(CMD, GP, uow)
        raise RuntimeError("rendering the response failed")
    with container.uow() as after:
        assert after.referrals.get(referral.id) is None


def test_a_key_already_claimed_stores_nothing_of_the_second_change(container) -> None:
    first = container.uow()
    with first:
        one = handlers.submit_referral(CMD, GP, first)
        first.commit(remember=remembered("k-2", one.id))
    second = container.uow()
    with pytest.raises(IntegrityError), second:
        two = handlers.submit_referral(CMD, GP, second)
        second.commit(remember=remembered("k-2", two.id))
    with container.uow() as after:
        assert after.referrals.get(two.id) is None
        assert after.idempotency_keys.get("B81001", "k-2") == remembered("k-2", one.id)


def test_two_changes_in_one_transaction_each_keep_the_version_they_replace(container) -> None:
    """A consumer changes a referral twice in one transaction (two events of one batch): the
    second change starts from the first's result, and both versions replaced stay readable."""
    referral = handlers.submit_referral(CMD, GP, container.uow())
    now = datetime.now(UTC)
    with Session(container.engine, expire_on_commit=False) as session:
        for priority in (Priority.ASAP, Priority.STAT):
            with UnitOfWork.joining(session) as uow:
                loaded = uow.referrals.get(referral.id, for_update=True)
                assert loaded is not None
                loaded.amend(GP, loaded.version, now, priority=priority)
                uow.commit()
        session.commit()
    with container.uow() as after:
        current = after.referrals.get(referral.id)
        kept = [after.ledger.referral_at(referral.id, version) for version in (1, 2)]
    assert current is not None
    assert (current.version, current.priority) == (3, Priority.STAT)
    assert [(k[0].version, k[0].priority) for k in kept if k] == [
        (1, Priority.URGENT),
        (2, Priority.ASAP),
    ]
    assert kept[0] and kept[0][0].patient == referral.patient
    assert kept[0][0].created_at == referral.created_at


def test_the_relay_wakes_when_a_change_commits_and_not_for_one_that_failed(container) -> None:
    """The unit of work's transaction (a bare connection) announces its outbox rows: the
    relay waiting on the database wakes once the change is committed, not for a rollback."""
    waiter = commit_signal(container.engine)
    try:
        waiter.wait(0)  # PostgreSQL: LISTEN now
        with pytest.raises(RuntimeError), container.uow() as uow:
            handlers.submit_referral(CMD, GP, uow)
            raise RuntimeError("rendering the response failed")
        assert not waiter.wait(0.3), "rolled back: nothing to publish"
        uow = container.uow()
        with uow:
            referral = handlers.submit_referral(CMD, GP, uow)
            uow.commit(remember=remembered("k-wake", referral.id))
        assert waiter.wait(10)
    finally:
        waiter.close()
