"""Headers a dependency reads itself (``rx_web.checked_headers``): the same verdicts and the
same answers as FastAPI's own validation of a declared header, alone and with other faults."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Header, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from rx_web.checked_headers import CheckedHeader, header_errors, read_headers
from rx_web.openapi import document_common_answers, documented_as
from rx_web.problems import install_problem_handlers

ETAG = r'^\s*(W/)?"?[0-9]{1,18}"?\s*$'
KEY = r"^[ -~]{1,255}$"
VALUES = [
    '"3"',
    "3",
    'W/"3"',
    ' \t"3"\x85\xa0',  # White_Space beyond ASCII: both engines
    '"3"\x1c',  # a separator Python's \s counts and pydantic's does not
    '"3"\n',  # $ before a final newline: Python's re, not pydantic's
    "",
    "x" * 255,
    "x" * 256,
    "tab\there",
    "é",
    '"1234567890123456789"',
]


@pytest.mark.parametrize("pattern", [ETAG, KEY])
@pytest.mark.parametrize("value", VALUES)
def test_a_value_is_accepted_exactly_when_pydantic_accepts_it(pattern: str, value: str) -> None:
    declared = TypeAdapter(Annotated[str, Field(pattern=pattern)])
    try:
        declared.validate_python(value)
        expected = None
    except ValidationError as exc:
        (error,) = exc.errors()
        expected = (error["type"], error["msg"])
    got = CheckedHeader("x-h", pattern).error(value)
    assert (got and (got["type"], got["msg"])) == expected


class Thing(BaseModel):
    name: str


def with_header(x_key: Annotated[str, Header(pattern=KEY)]) -> None:
    """Never called: the declaration."""


X_KEY = CheckedHeader("x-key", KEY)


@documented_as(with_header)
async def checked(request: Request) -> str | None:
    values = read_headers(request, X_KEY)
    return values[0] if values else None


async def declared(x_key: Annotated[str, Header(pattern=KEY)]) -> str:
    return x_key


def ours() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/things")
    async def add(
        thing: Thing, key: Annotated[str | None, Depends(checked)], request: Request
    ) -> str:
        if key is None:
            raise header_errors(request)
        return key

    return app


def theirs() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/things")
    async def add(thing: Thing, key: Annotated[str, Depends(declared)]) -> str:
        return key

    return app


def apps() -> tuple[FastAPI, FastAPI]:
    return ours(), theirs()


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"X-Key": "k"}, {"name": "a"}),
        ({}, {"name": "a"}),
        ({"X-Key": "tab\t"}, {"name": "a"}),
        ({"X-Key": "tab\t"}, {}),
        ({}, {"name": 3}),
        ({"X-Key": "k"}, {}),
    ],
)
def test_the_answer_is_fastapis_with_the_header_first(headers: dict[str, str], body: Any) -> None:
    with TestClient(ours()) as a, TestClient(theirs()) as b:
        got = a.post("/things", json=body, headers=headers)
        want = b.post("/things", json=body, headers=headers)
    assert (got.status_code, got.json()) == (want.status_code, want.json())
    if got.status_code == 422:
        assert "errors" in got.json()


def test_the_document_shows_the_declaration() -> None:
    checking, declaring = apps()
    document_common_answers(checking, rate_limited=False, body_limited=False)
    document_common_answers(declaring, rate_limited=False, body_limited=False)
    assert checking.openapi() == declaring.openapi()
    operation = checking.openapi()["paths"]["/things"]["post"]
    assert [p["name"] for p in operation["parameters"]] == ["x-key"]
