"""A create's caller and Idempotency-Key, read in one dependency level (the referrals and
notify APIs): the caller first, so a request without an identity is 401 whatever its headers;
a key missing or malformed waits for the rest of the request to be checked
(``rx_web.checked_headers``), as FastAPI's own check of a declared header did."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Request
from rx_contracts import Identity

from .checked_headers import IDEMPOTENCY_KEY, documented_key, header_errors, read_headers
from .identity import documented_identity, get_identity

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class Submission(Generic[C]):
    """The caller of a POST that creates something, and its Idempotency-Key: ``None`` when
    the header was missing or malformed (:meth:`checked_key`)."""

    caller: C
    key: str | None
    request: Request

    def checked_key(self) -> str:
        """The key; for one missing or malformed, FastAPI's answer (400 or 422 naming the
        header, with whatever else is wrong with the request; see ``rx_web.problems``)."""
        if self.key is None:
            raise header_errors(self.request)
        return self.key


def documented_submission(
    _caller: Annotated[None, Depends(documented_identity)],
    _key: Annotated[None, Depends(documented_key)],
) -> None:
    """Never called: what a submission dependency reads, as the API document shows it (the
    caller, then the Idempotency-Key, as two dependencies would)."""


async def read_submission(request: Request, caller_of: Callable[[Identity], C]) -> Submission[C]:
    """The service's caller (``caller_of`` the verified identity) and the Idempotency-Key."""
    caller = caller_of(await get_identity(request))
    key = read_headers(request, IDEMPOTENCY_KEY)
    return Submission(caller, key[0] if key else None, request)
