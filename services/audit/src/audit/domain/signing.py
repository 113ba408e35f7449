"""What a checkpoint's signature vouches for, and what a checked signature can say. Pure: the
adapters make and check the JWS (``adapters/checkpoint_keys.py``).

The audit service signs each checkpoint with a key of its own, so whoever can publish to the
checkpoint topic (the service's Kafka credentials) still cannot vouch for a chain: a
checkpoint is genuine only if its signature verifies with a published key *and* the signed
statement says what the checkpoint says."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rx_contracts import ChainCheckpointed

from .chain import canonical_json

SIGNED_FIELDS = ("chain_id", "sequence", "hash", "checkpointed_at")


def statement(checkpoint: ChainCheckpointed) -> dict[str, Any]:
    """What the signature covers: the checkpoint's chain, sequence, hash and time, each as
    the event's JSON carries it (so a verifier can compare them with the event as it is)."""
    data = checkpoint.model_dump(mode="json", include=set(SIGNED_FIELDS))
    return {name: data[name] for name in SIGNED_FIELDS}


def statement_bytes(checkpoint: ChainCheckpointed) -> bytes:
    """The statement as the JWS payload: canonical JSON (sorted keys, no spaces)."""
    return canonical_json(statement(checkpoint)).encode()


def mismatch(signed: Any, checkpoint: ChainCheckpointed) -> str | None:
    """What the signed statement says differently from ``checkpoint``; None if nothing."""
    if not isinstance(signed, dict):
        return "the signed payload is not a checkpoint statement"
    expected = statement(checkpoint)
    differing = [
        name for name in ("chain_id", "sequence", "hash") if signed.get(name) != expected[name]
    ]
    if not _same_instant(signed.get("checkpointed_at"), checkpoint.checkpointed_at):
        differing.append("checkpointed_at")
    if differing:
        return f"the signature is over another checkpoint ({', '.join(differing)} differ)"
    return None


def _same_instant(value: Any, expected: datetime) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value) == expected
    except ValueError:
        return False
