"""A router's routes added to the app itself (rx_web.routers.include_routes) are the routes
``include_router`` serves: the same document, the same answers; and a 405 names the methods
of those routes in Allow."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel
from rx_web.problems import install_problem_handlers
from rx_web.routers import include_routes


class Thing(BaseModel):
    id: str
    size: int = 1


def tag(x_tag: Annotated[str | None, Header()] = None) -> str | None:
    return x_tag


def make_router() -> APIRouter:
    router = APIRouter(prefix="/things", tags=["things"])

    @router.get("", summary="List things", responses={404: {"description": "None at all"}})
    def list_things(seen: Annotated[str | None, Depends(tag)] = None) -> list[Thing]:
        """Every thing."""
        return [Thing(id=seen or "a")]

    @router.post("", status_code=201, response_model=Thing, response_model_exclude_none=True)
    def create(thing: Thing) -> Any:
        return thing

    @router.get("/{thing_id}", response_class=PlainTextResponse, deprecated=True)
    def read(thing_id: int) -> str:
        return str(thing_id)

    @router.delete("/{thing_id}", include_in_schema=False, status_code=204)
    def delete(thing_id: int) -> None:
        return None

    return router


def app_with(include: Any) -> FastAPI:
    app = FastAPI(generate_unique_id_function=lambda route: route.name)
    install_problem_handlers(app)
    include(app, make_router())
    return app


def eager(app: FastAPI, router: APIRouter) -> None:
    include_routes(app, router)


def lazy(app: FastAPI, router: APIRouter) -> None:
    app.include_router(router)


def answers(app: FastAPI) -> list[Any]:
    with TestClient(app) as client:
        return [
            (r.status_code, r.headers.get("content-type"), r.text)
            for r in (
                client.get("/things", headers={"X-Tag": "t"}),
                client.post("/things", json={"id": "b", "size": 2}),
                client.post("/things", json={"size": "big"}),
                client.get("/things/3"),
                client.get("/things/three"),
                client.delete("/things/3"),
                client.get("/nowhere"),
            )
        ]


def test_the_routes_added_to_the_app_are_those_include_router_serves() -> None:
    before, after = app_with(lazy), app_with(eager)
    assert json.dumps(after.openapi()) == json.dumps(before.openapi())
    assert answers(after) == answers(before)


def test_a_wrong_method_on_a_router_s_path_is_405_naming_the_methods_served() -> None:
    """FastAPI's lazily included routers hide their routes from the app's route table, where
    the 405's Allow header is read from (rx_web.problems.allowed_methods)."""
    with TestClient(app_with(eager)) as client:
        response = client.put("/things")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD, POST"
        assert client.patch("/things/3").headers["allow"] == "DELETE, GET, HEAD"


def test_a_router_with_settings_of_its_own_is_refused_not_included_otherwise() -> None:
    app = FastAPI()
    with pytest.raises(ValueError, match="dependencies"):
        include_routes(app, APIRouter(dependencies=[Depends(tag)]))
    with pytest.raises(ValueError, match="responses"):
        include_routes(app, APIRouter(responses={404: {"description": "gone"}}))
    nested = APIRouter()
    nested.include_router(make_router())
    with pytest.raises(ValueError, match="not a plain APIRoute"):
        include_routes(app, nested)
