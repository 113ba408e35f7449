"""CloudEvents binary mode over Kafka: what a subscriber in any language would see."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from rx_contracts import (
    Actor,
    EnvelopeError,
    Priority,
    ReferralSubmitted,
    ServiceType,
    decode,
    encode,
    wrap,
)
from rx_contracts.envelope import MAX_EVENT_BYTES


def submitted(referral_id: str = "r-1") -> ReferralSubmitted:
    return ReferralSubmitted(
        referral_id=referral_id,
        sequence=1,
        version=1,
        actor=Actor(organisation="B81001", practitioner="G1234567"),
        referrer_org="B81001",
        service_type=ServiceType.URGENT_COMMUNITY_RESPONSE,
        priority=Priority.URGENT,
        postcode_district="BS5",
        submitted_at=datetime(2026, 11, 22, 9, 30, tzinfo=UTC),
    )


def test_binary_mode_puts_attributes_in_ce_headers_and_referral_id_in_key() -> None:
    env = wrap(submitted("r-42"), source="/services/referrals", correlation_id="c-1")
    record = encode(env)
    headers = dict(record.headers)
    assert record.key == b"r-42"
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"rx.referrals.ReferralSubmitted.v1"
    assert headers["ce_source"] == b"/services/referrals"
    assert headers["ce_id"] == env.id.encode()
    assert headers["ce_correlationid"] == b"c-1"
    assert headers["content-type"] == b"application/json"
    assert headers["traceparent"].startswith(b"00-")
    assert json.loads(record.value)["postcode_district"] == "BS5"


def test_round_trip_gives_back_the_same_event_and_payload() -> None:
    env = wrap(submitted(), source="/services/referrals")
    back = decode(*encode(env))
    assert back == env
    assert back.payload() == submitted()


def test_payload_carries_no_patient_identifiers() -> None:
    fields = set(ReferralSubmitted.model_fields)
    assert not fields & {"nhs_number", "name", "date_of_birth", "postcode", "patient"}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r._replace(value=b"not json"), "not JSON"),
        (lambda r: r._replace(value=b"[1]"), "not a JSON object"),
        (
            lambda r: r._replace(headers=[h for h in r.headers if h[0] != "ce_specversion"]),
            "CloudEvents",
        ),
        (lambda r: r._replace(key=b"other"), "key does not match"),
        (
            lambda r: r._replace(headers=[h for h in r.headers if h[0] != "ce_id"]),
            "invalid envelope",
        ),
    ],
)
def test_records_that_are_not_our_events_are_rejected_as_poison(mutate, message) -> None:
    record = mutate(encode(wrap(submitted(), source="/services/referrals")))
    with pytest.raises(EnvelopeError, match=message):
        decode(*record)


def _with_type(record, event_type: str):
    return record._replace(
        headers=[(k, event_type.encode() if k == "ce_type" else v) for k, v in record.headers]
    )


def test_a_known_event_in_a_version_nobody_reads_is_poison_before_its_payload_is_read() -> None:
    record = encode(wrap(submitted(), source="/services/referrals"))
    with pytest.raises(EnvelopeError, match=r"unknown version 'v2' of .*ReferralSubmitted.*v1"):
        decode(*_with_type(record, "rx.referrals.ReferralSubmitted.v2"))


def test_an_event_name_never_heard_of_is_decoded_for_consumers_that_record_anything() -> None:
    record = encode(wrap(submitted(), source="/services/referrals"))
    envelope = decode(*_with_type(record, "rx.referrals.ReferralCommented.v1"))
    assert envelope.type == "rx.referrals.ReferralCommented.v1"
    with pytest.raises(EnvelopeError, match="unknown event type"):
        envelope.payload()  # … and poison for those that must interpret it


def test_a_record_over_the_event_size_limit_is_poison_unread() -> None:
    record = encode(wrap(submitted(), source="/services/referrals"))
    padded = json.dumps({**json.loads(record.value), "padding": "x" * MAX_EVENT_BYTES}).encode()
    with pytest.raises(EnvelopeError, match=f"over the {MAX_EVENT_BYTES}-byte event limit"):
        decode(record.key, padded, record.headers)
    assert decode(*record).id  # the real one is far below it


def test_producers_refuse_to_write_an_event_over_the_size_limit() -> None:
    env = wrap(submitted(), source="/services/referrals")
    huge = env.model_copy(update={"data": {**env.data, "padding": "x" * MAX_EVENT_BYTES}})
    with pytest.raises(EnvelopeError, match="over the"):
        encode(huge)


def test_unknown_type_or_bad_payload_is_poison() -> None:
    env = wrap(submitted(), source="/s")
    with pytest.raises(EnvelopeError, match="unknown event type"):
        env.model_copy(update={"type": "rx.nope.Nope.v1"}).payload()
    with pytest.raises(EnvelopeError, match="invalid"):
        env.model_copy(update={"data": {**env.data, "priority": "whenever"}}).payload()


def test_consumers_ignore_fields_added_by_newer_producers() -> None:
    env = wrap(submitted(), source="/s")
    newer = env.model_copy(update={"data": {**env.data, "added_later": 1}})
    assert newer.payload() == submitted()
