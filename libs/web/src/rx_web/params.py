"""Parameter types that mean what the OpenAPI document says they mean."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator

_ISO_8601 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$"
)


def _iso_8601(value: object) -> object:
    """Pydantic would read ``0.5`` or ``1700000000`` (text or a JSON number) as Unix times;
    the documented format is an ISO 8601 date-time, so only that is accepted."""
    if isinstance(value, int | float) or (
        isinstance(value, str) and not _ISO_8601.match(value.strip())
    ):
        raise ValueError("must be an ISO 8601 date-time such as 2026-11-23T14:30:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_8601)]
"""A date-time query or body field given as ISO 8601 text (``2026-11-23T14:30:00Z``)."""
