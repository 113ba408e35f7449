"""The responses remembered per Idempotency-Key (table ``idempotency_key``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rx_messaging import fastsql
from sqlalchemy import Table, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from .tables import IdempotencyRow
from .transaction import Transaction

IDEMPOTENCY: Table = IdempotencyRow.__table__  # type: ignore[attr-defined]
_BY_KEY = select(
    IDEMPOTENCY.c.fingerprint, IDEMPOTENCY.c.status_code, IDEMPOTENCY.c.body, IDEMPOTENCY.c.headers
).where(
    IDEMPOTENCY.c.organisation == bindparam("organisation"), IDEMPOTENCY.c.key == bindparam("key")
)


@dataclass(frozen=True)
class StoredResponse:
    """An HTTP answer as it is remembered and replayed."""

    status_code: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class IdempotentResponse:
    """The first response to a POST that carried an Idempotency-Key, and what made it."""

    organisation: str
    key: str
    fingerprint: str
    """What made the request (route, version, body): a retry must match it."""
    response: StoredResponse


class IdempotencyKeys:
    def __init__(self, session: Session | Transaction) -> None:
        self.session = session

    def get(self, organisation: str, key: str) -> IdempotentResponse | None:
        # Every change looks its key up first (a retry is answered, not refused as stale):
        # straight to the driver with a statement built once, as claim() inserts.
        found = fastsql.fetch_rows(
            self.session.connection(), _BY_KEY, {"organisation": organisation, "key": key}
        )
        if not found:
            return None
        fingerprint, status_code, body, headers = found[0]
        response = StoredResponse(status_code, body, headers)
        return IdempotentResponse(organisation, key, fingerprint, response)

    def claim(self, remembered: IdempotentResponse) -> None:
        """Insert the key with its response: the insert is what claims the key, so an earlier
        or concurrent use of it makes this raise ``IntegrityError``."""
        values = {
            "organisation": remembered.organisation,
            "key": remembered.key,
            "fingerprint": remembered.fingerprint,
            "status_code": remembered.response.status_code,
            "body": remembered.response.body,
            "headers": remembered.response.headers,
            "created_at": datetime.now(UTC),
        }
        conn = self.session.connection()
        try:
            fastsql.execute(conn, fastsql.insert_into(IDEMPOTENCY, tuple(values)), values)
        except conn.dialect.loaded_dbapi.IntegrityError as exc:
            # Straight to the driver (rx_messaging.fastsql), which does not wrap its errors.
            raise IntegrityError("claiming the Idempotency-Key", None, exc) from exc
