"""Units of work nest: a handler run inside an open one (an idempotent POST's) writes nothing
until the outer commit, which stores the change, its event and the response together."""

from __future__ import annotations

import pytest
from referrals.adapters.idempotency import IdempotentResponse, StoredResponse
from referrals.bootstrap import bootstrap
from referrals.config import Settings
from referrals.domain.caller import Caller, Role
from referrals.domain.model import Patient
from referrals.service_layer import handlers
from rx_contracts import CohortFlags, Priority, ServiceType
from sqlalchemy.exc import IntegrityError

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
