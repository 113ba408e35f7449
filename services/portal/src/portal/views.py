"""Words and formats the pages show: labels for codes, times, the countdown to a deadline."""

from __future__ import annotations

from datetime import UTC, datetime

STATUS_LABELS = {
    "submitted": ("Submitted", "nhsuk-tag--grey"),
    "routed": ("Offered", "nhsuk-tag--blue"),
    "accepted": ("Accepted", "nhsuk-tag--aqua-green"),
    "in_progress": ("In progress", "nhsuk-tag--purple"),
    "completed": ("Completed", "nhsuk-tag--green"),
    "cancelled": ("Cancelled", "nhsuk-tag--grey"),
    "unroutable": ("No team found", "nhsuk-tag--red"),
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
    minutes = abs(seconds) // 60
    hours, minutes = divmod(minutes, 60)
    span = f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
    return f"Due in {span}" if seconds >= 0 else f"Overdue by {span}"


def is_overdue(due: str | datetime, now: datetime | None = None) -> bool:
    return parse_time(due) < (now or datetime.now(UTC))
