"""Parameter types that mean what the OpenAPI document says they mean."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

_ISO_8601 = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d"
    r"(:[0-5]\d(\.\d{1,6})?)?(Z|[+-]([01]\d|2[0-3]):?[0-5]\d)?$"
)


def _iso_8601(value: object) -> object:
    """Pydantic would read ``0.5`` or ``1700000000`` (text or a JSON number) as Unix times;
    the documented format is an ISO 8601 date-time, so only that is accepted."""
    if isinstance(value, int | float) or (
        isinstance(value, str) and not _ISO_8601.match(value.strip())
    ):
        raise ValueError("must be an ISO 8601 date-time such as 2026-11-23T14:30:00Z")
    return value


ISO_8601_SCHEMA = {
    "type": "string",
    "format": "date-time",
    "pattern": _ISO_8601.pattern,
    "description": "ISO 8601: a real calendar date and time, seconds and up to 6 decimals "
    "optional, then Z or an offset",
}

IsoDateTime = Annotated[datetime, BeforeValidator(_iso_8601), WithJsonSchema(ISO_8601_SCHEMA)]
"""A date-time query or body field given as ISO 8601 text (``2026-11-23T14:30:00Z``); its
schema says exactly which text is read."""


def on_strings(**keywords: object) -> Callable[[dict[str, Any]], None]:
    """A field's ``json_schema_extra`` that puts ``keywords`` (a pattern, a format) on its
    string schema, also when the field is optional (inside ``anyOf: [string, null]``), where
    every schema-driven client and generator will see them."""

    def extra(schema: dict[str, Any]) -> None:
        branches = [b for b in schema.get("anyOf", []) if b.get("type") == "string"]
        for target in branches or [schema]:
            target.update(keywords)

    return extra
