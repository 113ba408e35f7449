"""Words and formats the pages show: labels for codes, times, the countdown to a deadline."""

from __future__ import annotations

from datetime import UTC, datetime

PLATFORM_ORG = "RX"
"""Who acted when the platform itself did (routing decisions, clocks)."""

STATUS_LABELS = {
    "submitted": ("Submitted", "nhsuk-tag--grey"),
    "routed": ("Offered", "nhsuk-tag--blue"),
    "accepted": ("Accepted", "nhsuk-tag--aqua-green"),
    "in_progress": ("In progress", "nhsuk-tag--purple"),
    "completed": ("Completed", "nhsuk-tag--green"),
    "cancelled": ("Cancelled", "nhsuk-tag--grey"),
    "unroutable": ("No team found", "nhsuk-tag--red"),
    "info_requested": ("Question asked", "nhsuk-tag--yellow"),
    "failed": ("Not delivered", "nhsuk-tag--red"),
}
CONSENT_LABELS = {
    "explicit-consent": "The patient consented",
    "implied-direct-care": "Implied consent, for their direct care",
    "best-interests": "In their best interests (they lack capacity)",
    "safeguarding": "Safeguarding",
}
"""The bases for sharing the patient's details, as people read them."""
ENDED = ("completed", "cancelled", "failed")
"""Statuses a referral ends in: nothing is due any more."""
STEP_LABELS = {
    "request-info": "Question",
    "provide-info": "Answer",
    "message": "Message",
    "report-progress": "Update",
}
"""History steps that say something to the other party, as the timeline names them."""
ACTION_LABELS = {
    **STEP_LABELS,
    "record-nhs-number": "NHS number recorded",
    "fail": "Not delivered",
}
PRIORITY_CLASSES = {
    "routine": "nhsuk-tag--grey",
    "urgent": "nhsuk-tag--orange",
    "asap": "nhsuk-tag--red",
    "stat": "nhsuk-tag--red",
}


def words(code: str | None) -> str:
    """A code as words: ``urgent-community-response`` → ``Urgent community response``."""
    if not code:
        return ""
    return code.replace("-", " ").replace("_", " ").capitalize()


def step_label(action: str) -> str:
    """A history step's action as words: ``request-info`` → ``Question``."""
    return ACTION_LABELS.get(action) or words(action)


def parse_time(value: str | datetime) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def when(value: str | datetime | None) -> str:
    """``3 Dec 2026, 09:41`` (UTC)."""
    if not value:
        return ""
    return parse_time(value).strftime("%-d %b %Y, %H:%M")


def countdown(due: str | datetime, now: datetime | None = None) -> str:
    """``Due in 1 h 05 min`` or ``Overdue by 12 min`` (the page's script keeps it ticking)."""
    seconds = int((parse_time(due) - (now or datetime.now(UTC))).total_seconds())
    span = _span(abs(seconds) // 60)
    return f"Due in {span}" if seconds >= 0 else f"Overdue by {span}"


def _span(minutes: int) -> str:
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} day{'s' if days > 1 else ''} {hours} h"
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def size(count: int) -> str:
    """``812 bytes``, ``14.2 KB``, ``1.3 MB``."""
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count / (1024 * 1024):.1f} MB"


def is_overdue(due: str | datetime, now: datetime | None = None) -> bool:
    return parse_time(due) < (now or datetime.now(UTC))
