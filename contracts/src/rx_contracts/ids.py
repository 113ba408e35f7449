"""Identifiers for referrals, events and decisions: UUIDs version 7 (RFC 9562).

A version 7 UUID starts with its creation time in Unix milliseconds, followed by 74 random
bits. Still a plain UUID to everyone who receives one, but ids made one after another sort
one after another, so every index keyed on them grows at its right-hand edge instead of at
random places: a batch of inserts dirties a few B-tree pages instead of one page per row per
index, for every service's outbox, inbox, history and audit indexes alike (measured in
bench/RESULTS.md). 74 random bits leave
collisions out of reach; the creation time an id reveals is the time the thing it names was
created, which its holders see anyway."""

from __future__ import annotations

import os
import time
import uuid

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_B = (1 << 62) - 1


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    """A new version 7 UUID: 48 bits of Unix milliseconds, version, 12 random bits, variant,
    62 random bits."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    random = int.from_bytes(os.urandom(10), "big")  # 80 bits: 12 for rand_a, 62 for rand_b
    rand_a = (random >> 62) & 0xFFF
    return uuid.UUID(int=(ms << 80) | _VERSION | (rand_a << 64) | _VARIANT | (random & _RAND_B))


def new_id() -> str:
    """A new identifier for something we create (referral, event, decision, attachment), as
    the canonical 36-character text."""
    return str(uuid7())
