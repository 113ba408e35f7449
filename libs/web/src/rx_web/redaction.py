"""Keeping secrets and patient identifiers out of logs.

Code should not log them in the first place; this is the net under it. Every log record is
rendered once and scrubbed of tokens, credentials, passwords in URLs, NHS numbers, postcodes
and the values of patient fields (name, birth date, …) before any handler writes it,
tracebacks included (an exception message can quote a request)."""

from __future__ import annotations

import logging
import re

PATIENT_FIELDS = (
    "nhs_number",
    "name",
    "birth_date",
    "postcode",
    "clinical_summary",
    "reason_text",
    "summary",
    "filename",
)
"""Fields whose values identify or describe a patient, wherever they appear as key: value."""

_RULES: list[tuple[re.Pattern[str], str]] = [
    # JWTs (access tokens), wherever they appear
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[token]"),
    # Authorization: Bearer … / Basic …
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [redacted]"),
    # secret=…, "password": "…", client_secret: …
    (
        re.compile(
            r"""(?i)((?:client_)?secret|password|passwd|pwd|api[_-]?key)(["']?\s*[:=]\s*["']?)[^\s"'&,;}]+"""
        ),
        r"\1\2[redacted]",
    ),
    # scheme://user:password@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@"), r"\1[redacted]@"),
    # "name": "Alex Smith", 'birth_date': '1941-03-07', postcode=BS5 0AA
    (
        re.compile(
            r"""(?i)(["']?\b(?:"""
            + "|".join(PATIENT_FIELDS)
            + r""")\b["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,;}&]+)"""
        ),
        r"\1[redacted]",
    ),
    # NHS numbers: ten digits, possibly spaced 3-3-4
    (re.compile(r"(?<![\d.])\d{3}[ -]?\d{3}[ -]?\d{4}(?![\d.])"), "[nhs-number]"),
    # UK postcodes
    (re.compile(r"(?i)\b[A-Z]{1,2}[0-9][A-Z0-9]?\s*[0-9][A-Z]{2}\b"), "[postcode]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter: renders the record's message (and traceback) and scrubs them."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
