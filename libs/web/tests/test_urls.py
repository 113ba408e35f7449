"""A route's absolute URL from ``rx_web.urls.url_for`` is Starlette's ``request.url_for``'s, for
every value and mount, refusals included, while the routes are searched once, not per request."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient
from rx_web.urls import url_for

items = APIRouter(prefix="/items")


@items.get("/{item_id}")
def read_item(item_id: str) -> dict[str, str]:
    return {"id": item_id}


@items.get("/{item_id}/parts/{part}")
def read_part(item_id: str, part: int) -> dict[str, Any]:
    return {"id": item_id, "part": part}


@items.get("/files/{name:path}")
def read_file(name: str) -> dict[str, str]:
    return {"name": name}


def both(request: Request, name: str, params: dict[str, Any]) -> list[str]:
    """What each way answers: the URL, or the exception's class."""
    answers = []
    for way in (lambda: request.url_for(name, **params), lambda: url_for(request, name, **params)):
        try:
            answers.append(str(way()))
        except Exception as exc:
            answers.append(type(exc).__name__)
    return answers


def app_comparing(cases: list[tuple[str, dict[str, Any]]]) -> FastAPI:
    app = FastAPI()
    app.include_router(items)

    @app.get("/compare")
    def compare(request: Request) -> list[list[str]]:
        return [both(request, name, params) for name, params in cases]

    return app


CASES: list[tuple[str, dict[str, Any]]] = [
    ("read_item", {"item_id": "6f1c2a"}),
    ("read_item", {"item_id": "a b?c#d%e"}),  # Starlette does not quote: neither do we
    ("read_item", {"item_id": "a\\b"}),  # Starlette escapes a backslash
    ("read_item", {"item_id": "~item_id~"}),  # looks like the marker
    ("read_item", {"item_id": "é"}),
    ("read_item", {"item_id": "x/y"}),  # a string parameter refuses "/"
    ("read_item", {"item_id": ""}),
    ("read_item", {}),
    ("read_item", {"item_id": "1", "other": "2"}),
    ("read_part", {"item_id": "a", "part": 3}),
    ("read_part", {"item_id": "a", "part": "3"}),
    ("read_file", {"name": "a/b.txt"}),
    ("no_such_route", {"item_id": "1"}),
]


@pytest.mark.parametrize("root_path", ["", "/referrals-api", "/api/"])
def test_every_answer_is_starlettes(root_path: str) -> None:
    client = TestClient(app_comparing(CASES), root_path=root_path)
    for _ in range(2):  # the second time from the cache
        answers = client.get("/compare").json()
        for (name, params), (starlette, ours) in zip(CASES, answers, strict=True):
            assert ours == starlette, (name, params)
    assert answers[0][1] == f"http://testserver{root_path.rstrip('/')}/items/6f1c2a"


@pytest.mark.parametrize(
    ("scheme", "host", "server"),
    [
        ("https", "exchange.example:8443", ("10.0.0.1", 443)),
        ("http", "[::1]:8000", ("::1", 8000)),
        ("http", None, ("::1", 8000)),
        ("https", None, ("127.0.0.1", 443)),
        ("http", None, None),
        ("http", "bad host:port", ("127.0.0.1", 8000)),
        ("http", "", ("127.0.0.1", 80)),
    ],
)
def test_every_base_is_starlettes(scheme: str, host: str | None, server: Any) -> None:
    """The URL's start as Starlette makes it from the scheme, the Host header, the server's
    address, whichever of them the request has."""
    app = app_comparing(CASES[:1])
    headers = [] if host is None else [(b"host", host.encode())]
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/compare", "root_path": ""}
    scope |= {"scheme": scheme, "server": server, "headers": headers, "query_string": b""}
    scope |= {"app": app, "router": app.router}
    for _ in range(2):
        starlette, ours = both(Request(scope), "read_item", {"item_id": "6f1c2a"})
        assert ours == starlette


def test_the_routes_are_searched_once(monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_comparing([])
    searches: list[str] = []
    real = app.router.url_path_for

    def counting(name: str, /, **params: Any) -> Any:
        searches.append(name)
        return real(name, **params)

    monkeypatch.setattr(app.router, "url_path_for", counting)

    @app.get("/where/{item_id}")
    def where(item_id: str, request: Request) -> str:
        return str(url_for(request, "read_item", item_id=item_id))

    client = TestClient(app)
    urls = [client.get(f"/where/{n}").json() for n in ("1", "2", "3")]
    assert urls == [f"http://testserver/items/{n}" for n in ("1", "2", "3")]
    assert searches == ["read_item"]
