"""Audit checkpoints are events like any other, keyed by their chain rather than a referral."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

import pytest
from pydantic import ValidationError
from rx_contracts import ChainCheckpointed, Payload, decode, encode, wrap


def checkpoint(**changes: object) -> ChainCheckpointed:
    fields: dict[str, object] = {
        "chain_id": "chain-1",
        "sequence": 42,
        "hash": "ab" * 32,
        "checkpointed_at": datetime(2026, 11, 22, 9, 30, tzinfo=UTC),
    }
    return ChainCheckpointed.model_validate(fields | changes)


def test_a_checkpoint_is_keyed_by_its_chain_and_round_trips() -> None:
    env = wrap(checkpoint(), source="/services/audit")
    record = encode(env)
    assert record.key == b"chain-1" and env.subject == "chain-1"
    assert dict(record.headers)["ce_type"] == b"rx.audit.ChainCheckpointed.v1"
    assert decode(*record).payload() == checkpoint()


def test_a_checkpoint_hash_must_be_a_sha256_hex_digest() -> None:
    with pytest.raises(ValidationError, match="hash"):
        checkpoint(hash="not-a-hash")
    with pytest.raises(ValidationError, match="sequence"):
        checkpoint(sequence=0)


def test_a_payload_that_does_not_name_its_key_cannot_be_wrapped() -> None:
    class Keyless(Payload):
        EVENT_TYPE: ClassVar[str] = "rx.test.Keyless.v1"

    with pytest.raises(NotImplementedError, match="Keyless"):
        wrap(Keyless(), source="/tests")
