"""What never reaches a log: tokens, credentials, passwords in URLs, NHS numbers, postcodes,
patient names and other patient fields — in messages and in tracebacks."""

from __future__ import annotations

import io
import logging

import pytest
from rx_web.redaction import redact
from rx_web.server import configure_logging

JWT = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJyeGEwMSJ9.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {JWT}", JWT),
        (f"token={JWT[:40]}.abc.def", JWT[:40]),
        (
            "Authorization: Basic cnhhMDE6cnhhMDEtZGVtby1zZWNyZXQ=",
            "cnhhMDE6cnhhMDEtZGVtby1zZWNyZXQ=",
        ),
        ("client_secret=rxa01-demo-secret&grant_type=client_credentials", "rxa01-demo-secret"),
        ('{"password": "hunter22"}', "hunter22"),
        ("postgresql+psycopg://referrals:referrals-dev@postgres:5432/referrals", "referrals-dev"),
        ("patient 9434765919 admitted", "9434765919"),
        ("patient 943 476 5919 admitted", "943 476 5919"),
        ("lives at BS5 0AA", "BS5 0AA"),
        ("lives at bs50aa", "bs50aa"),
        ("{'name': 'Alex Smith', 'birth_date': '1941-03-07'}", "Alex Smith"),
        ('{"name": "Alex Smith", "birth_date": "1941-03-07"}', "1941-03-07"),
        ("filename=alex-smith-discharge.pdf", "alex-smith"),
        ('"clinical_summary": "Fall at home, lives alone"', "lives alone"),
    ],
)
def test_redact_removes_it(text: str, secret: str) -> None:
    assert secret not in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "referral 0b6f1d2e-6a53-4c4c-9d4e-2f4f5e1a9c10 routed to RXA01",
        "published 12 outbox rows to referrals.events.v1 in 0.0123 s",
        "2026-11-22 14:33:01 consumer lag 3",
    ],
)
def test_redact_leaves_ordinary_operational_lines_alone(text: str) -> None:
    assert redact(text) == text


def test_configured_logging_scrubs_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("test-api", stream)
    try:
        log = logging.getLogger("uvicorn.error")  # what uvicorn logs a failed request with
        log.warning("request from %s with %s", "RXA01", {"nhs_number": "9434765919"})
        try:
            raise ValueError(f"bad row ('9434765919', 'BS5 0AA') for Bearer {JWT}")
        except ValueError:
            log.exception("Exception in ASGI application")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    written = stream.getvalue()
    assert "Exception in ASGI application" in written and "Traceback" in written
    for secret in ("9434765919", "BS5 0AA", JWT):
        assert secret not in written
    assert "[nhs-number]" in written and "[token]" in written
