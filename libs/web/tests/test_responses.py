"""rx_web.responses.JSONResponse: the same bytes as Starlette's for what the services send."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.responses import JSONResponse as StarletteJSONResponse
from rx_web.responses import JSONResponse

BODIES: list[Any] = [
    {"id": "0192d1c4", "version": 3, "open": True, "closed": None, "score": 1.5, "n": -0.0},
    {"text": 'Zoë O’Brien — 3 °C, "dizzy"; 日本語 \\ \u2028 \n\t\x00\x1f', "list": [1, [], {}]},
    [{"nested": {"deeper": ["a", None, False]}}],
    "a string",
    {},
]


@pytest.mark.parametrize("body", BODIES)
def test_the_answer_is_byte_for_byte_starlettes(body: Any) -> None:
    ours, theirs = JSONResponse(body, status_code=201), StarletteJSONResponse(body, status_code=201)
    assert ours.body == theirs.body
    assert ours.headers["content-type"] == theirs.headers["content-type"] == "application/json"
    assert ours.headers["content-length"] == theirs.headers["content-length"]
