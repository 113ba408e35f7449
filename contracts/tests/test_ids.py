"""Ids we create are RFC 9562 version 7 UUIDs: valid UUIDs to every receiver, ordered by
creation time so the indexes keyed on them grow at one end."""

from __future__ import annotations

import time
import uuid

from rx_contracts import examples, new_id, wrap
from rx_contracts.ids import uuid7


def test_layout_is_rfc_9562_version_7() -> None:
    before = time.time_ns() // 1_000_000
    made = uuid7()
    after = time.time_ns() // 1_000_000
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after  # the first 48 bits: Unix milliseconds


def test_text_form_is_a_canonical_uuid() -> None:
    text = new_id()
    assert str(uuid.UUID(text)) == text and len(text) == 36


def test_ids_made_in_later_milliseconds_sort_later() -> None:
    ids = [str(uuid7(unix_ms=1_795_000_000_000 + n)) for n in range(1000)]
    assert ids == sorted(ids)
    made = []
    for _ in range(5):
        made.append(new_id())
        time.sleep(0.002)
    assert made == sorted(made)


def test_random_bits_keep_ids_unique_within_one_millisecond() -> None:
    same_ms = [uuid7(unix_ms=1_795_000_000_000) for _ in range(100_000)]
    assert len(set(same_ms)) == 100_000
    # All 74 random bits vary: none is stuck at 0 or 1 across many ids.
    bits = [u.int for u in same_ms[:2000]]
    random_mask = ((1 << 12) - 1) << 64 | ((1 << 62) - 1)
    varying = 0
    for bit in range(128):
        if random_mask >> bit & 1:
            ones = sum(b >> bit & 1 for b in bits)
            varying += 0 < ones < len(bits)
    assert varying == 74


def test_events_get_version_7_ids() -> None:
    assert uuid.UUID(wrap(examples.referral_submitted(), source="/t").id).version == 7
