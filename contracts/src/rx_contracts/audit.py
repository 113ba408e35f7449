"""Events the audit service publishes."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from .payload import Payload

HASH_PATTERN = r"^[0-9a-f]{64}$"
JWS_COMPACT_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"


class ChainCheckpointed(Payload):
    """The head of an audit hash chain at one moment, published to ``audit.checkpoints.v1``.

    Anyone holding these can later prove the audit database still contains every entry up to
    ``sequence`` unchanged: recomputing the chain must give ``hash`` at that sequence. Keyed by
    ``chain_id``, so one chain's checkpoints stay in order. Each is signed with the audit
    service's own checkpoint key (``signature``), so publishing to the topic is not enough to
    vouch for a chain."""

    EVENT_TYPE: ClassVar[str] = "rx.audit.ChainCheckpointed.v1"

    chain_id: str = Field(
        description="Id of the audit chain (one per audit database); also the Kafka key.",
        min_length=1,
        max_length=64,
        examples=["6f0d3c1e-93a4-4f7e-b0a5-2d0f6a4c8e11"],
    )
    sequence: int = Field(
        ge=1, description="Sequence number of the newest entry covered (the chain's length)."
    )
    hash: str = Field(
        pattern=HASH_PATTERN,
        description="SHA-256 hash (hex) of the entry at that sequence.",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )
    checkpointed_at: datetime = Field(description="When the head was read (UTC).")
    signature: str | None = Field(
        default=None,
        pattern=JWS_COMPACT_PATTERN,
        max_length=4096,
        description="This checkpoint signed with the audit service's checkpoint key: a JWS in "
        "compact serialisation (RFC 7515). Its protected header names the key (`kid`, "
        "published as a JWKS at the audit service's GET /audit/checkpoint-keys) and the "
        "algorithm (EdDSA or ES256); its payload is the JSON object {chain_id, sequence, hash, "
        "checkpointed_at} of this checkpoint. A checkpoint without a signature, or whose "
        "signature does not verify with a published key, or whose payload says something "
        "else, was not published by the audit service.",
        examples=["eyJhbGciOiJFZERTQSIsImtpZCI6IjIwMjYxMjAzIn0.eyJzZXF1ZW5jZSI6MX0.c2lnbmF0dXJl"],
    )

    @property
    def key(self) -> str:
        """Kafka key: the chain id (checkpoints are not about a referral)."""
        return self.chain_id
