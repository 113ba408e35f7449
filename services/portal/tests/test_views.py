"""The countdown to a deadline as the worklist shows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from portal.views import countdown, is_overdue, size, words

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def test_the_countdown_says_how_long_is_left_or_how_late_it_is() -> None:
    assert countdown(NOW + timedelta(minutes=125, seconds=30), NOW) == "Due in 2 h 05 min"
    assert countdown(NOW + timedelta(minutes=9), NOW) == "Due in 9 min"
    assert countdown((NOW - timedelta(minutes=12)).isoformat(), NOW) == "Overdue by 12 min"
    assert is_overdue(NOW - timedelta(seconds=1), NOW) and not is_overdue(NOW, NOW)


def test_codes_read_as_words() -> None:
    assert words("urgent-community-response") == "Urgent community response"
    assert words("in_progress") == "In progress"


def test_long_waits_count_in_days_and_sizes_read_as_people_say_them() -> None:
    assert countdown(NOW + timedelta(days=13, hours=23, minutes=59), NOW) == "Due in 13 days 23 h"
    assert countdown(NOW - timedelta(days=1, hours=2), NOW) == "Overdue by 1 day 2 h"
    assert size(27) == "27 bytes" and size(14_540) == "14.2 KB" and size(1_363_149) == "1.3 MB"


def test_every_lifecycle_status_has_a_label_and_a_tag() -> None:
    from portal.views import STATUS_LABELS
    from rx_contracts import ReferralStatus

    assert set(STATUS_LABELS) == {s.value for s in ReferralStatus}
